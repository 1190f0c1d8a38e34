// One ISA's f32 unary kernels over SLEEF, included by avx512.cc and avx2.cc, each compiled
// with its ISA's flags (build.rs). Before including, define:
//   EMILY_ISA_NS    the namespace (avx512, avx2)
//   V, W            SLEEF's vector type and its width in floats
//   LOAD, STORE     unaligned load/store of V
//   SLEEF(f, u)     the SLEEF name of float function f at accuracy u for this ISA
//   SQRT, ADD, SUB, DIV, ABS, SET1, SELECT_LT(x, c, a, b)   (x < c ? a : b, lane-wise)
// The tail (n % W elements) runs through the same vector code on a padded copy, so every
// element of an array gets the same instructions whatever its position.
#include <cstddef>
#include <cstring>

#include <sleef.h>

#include "kernels/kernels.hpp"

namespace emily::kernels::EMILY_ISA_NS {

namespace {

template <typename F>
inline void map(const float* in, float* out, size_t n, F f) {
  size_t i = 0;
  for (; i + W <= n; i += W) STORE(out + i, f(LOAD(in + i)));
  if (i < n) {
    alignas(64) float buf[W] = {0};
    std::memcpy(buf, in + i, (n - i) * sizeof(float));
    STORE(buf, f(LOAD(buf)));
    std::memcpy(out + i, buf, (n - i) * sizeof(float));
  }
}

}  // namespace

void unary_f32(UnaryOp op, const float* in, float* out, size_t n) {
  switch (op) {
    case UnaryOp::exp: return map(in, out, n, [](V x) { return SLEEF(exp, u10)(x); });
    // expm1(x) and log1p(x) are x itself for |x| < 2^-25 (SLEEF's flush denormals to 0).
    case UnaryOp::expm1:
      return map(in, out, n, [](V x) { return SELECT_LT(ABS(x), SET1(0x1p-25f), x, SLEEF(expm1, u10)(x)); });
    case UnaryOp::log: return map(in, out, n, [](V x) { return SLEEF(log, u10)(x); });
    case UnaryOp::log1p:
      return map(in, out, n, [](V x) { return SELECT_LT(ABS(x), SET1(0x1p-25f), x, SLEEF(log1p, u10)(x)); });
    case UnaryOp::sin: return map(in, out, n, [](V x) { return SLEEF(sin, u10)(x); });
    case UnaryOp::cos: return map(in, out, n, [](V x) { return SLEEF(cos, u10)(x); });
    case UnaryOp::tanh: return map(in, out, n, [](V x) { return SLEEF(tanh, u10)(x); });
    case UnaryOp::erf: return map(in, out, n, [](V x) { return SLEEF(erf, u10)(x); });
    case UnaryOp::sqrt: return map(in, out, n, [](V x) { return SQRT(x); });
    case UnaryOp::rsqrt: return map(in, out, n, [](V x) { return DIV(SET1(1.0f), SQRT(x)); });
    case UnaryOp::sigmoid:
      // With e = e^-|x| (which never overflows): e / (1 + e) for x < 0, 1 / (1 + e)
      // otherwise; tiny results stay denormal instead of flushing to 0.
      return map(in, out, n, [](V x) {
        V one = SET1(1.0f);
        V e = SLEEF(exp, u10)(SUB(SET1(0.0f), ABS(x)));
        V d = ADD(one, e);
        return SELECT_LT(x, SET1(0.0f), DIV(e, d), DIV(one, d));
      });
  }
}

}  // namespace emily::kernels::EMILY_ISA_NS
