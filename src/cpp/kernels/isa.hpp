// One ISA's f32 kernels over SLEEF, included by avx512.cc and avx2.cc, each compiled with
// its ISA's flags (build.rs). Before including, define:
//   EMILY_ISA_NS    the namespace (avx512, avx2)
//   V, W            SLEEF's vector type and its width in floats
//   LOAD, STORE     unaligned load/store of V
//   SLEEF(f, u)     the SLEEF name of float function f at accuracy u for this ISA
//   SQRT, ADD, SUB, MUL, DIV, MAX, MIN, ABS, NEG (sign flip), SET1, SELECT_LT(x, c, a, b)   (x < c ? a : b,
//                   lane-wise)
//   SELECT_NAN(x, a, b)   isnan(x) ? a : b, lane-wise
//   HSUM, HMAX, HMIN   the sum, max, min of a vector's lanes, as a float
//   HAS_NAN(x)      nonzero when a lane of x is NaN
//   FMA(a, b, c)    a * b + c, rounded once
//   ANY_GE(x, c)    nonzero when a lane of x is >= c
//   VI, QUARTER_INDEX(ax)   an int32 vector; for ax >= 0, clamp((bits(ax) >> 21) - 504, 0, 15):
//                   the quarter-binade of ax from 0.5 up (see tables.hpp)
//   LOOKUP16(i, t)  t[i] lane-wise, for a 64-byte aligned table of 16 floats
//   OR_SIGN(y, x)   y with x's sign bit or'ed in (y >= 0: copysign)
//   CODES4(p)       the W 4-bit codes of the W / 8 words at p, from the lowest bits up, as floats
//   CODES8(p)       the W bytes at p as floats
//   LOADI(p)        W int32s at p as a VI
//   LOADN(p, n)     the n <= W floats at p, the other lanes 0 (nothing past them is read)
//   PERMUTE(v, i)   v[i] lane-wise (i: a VI of lane numbers)
//   NIBBLE(v, s)    per lane of v (a VI), the value of its bits s..s+3 (0-15) as a float
// The tail (n % W elements) runs through the same vector code on a padded copy, so every
// element of an array gets the same instructions whatever its position.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include <sleef.h>

#include "kernels/kernels.hpp"
#include "kernels/tables.hpp"

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

// f(a[i], b[i]) over n elements, or with a (or b) one element for all.
template <typename F>
inline void map2(Operands layout, const float* a, const float* b, float* out, size_t n, F f) {
  if (layout == Operands::scalar_a) {
    V va = SET1(a[0]);
    return map(b, out, n, [&](V x) { return f(va, x); });
  }
  if (layout == Operands::scalar_b) {
    V vb = SET1(b[0]);
    return map(a, out, n, [&](V x) { return f(x, vb); });
  }
  size_t i = 0;
  for (; i + W <= n; i += W) STORE(out + i, f(LOAD(a + i), LOAD(b + i)));
  if (i < n) {
    alignas(64) float ba[W] = {0}, bb[W] = {0};
    std::memcpy(ba, a + i, (n - i) * sizeof(float));
    std::memcpy(bb, b + i, (n - i) * sizeof(float));
    STORE(ba, f(LOAD(ba), LOAD(bb)));
    std::memcpy(out + i, ba, (n - i) * sizeof(float));
  }
}

// Four accumulators over 4W elements a step, then the rest W at a time, then the tail
// padded with the identity `pad`; `step(acc, x)` folds x into acc, `lanes` reduces a vector.
// With `nans`, *nans is set when x - x was NaN somewhere (a NaN or an infinity in `in`).
template <typename S, typename L>
inline float fold(const float* in, size_t n, float pad, S step, L lanes, bool* nans = nullptr) {
  V a0 = SET1(pad), a1 = a0, a2 = a0, a3 = a0, z = SET1(0.0f);
  auto take = [&](V& acc, V x) {
    acc = step(acc, x);
    if (nans) z = ADD(z, SUB(x, x));
  };
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    take(a0, LOAD(in + i));
    take(a1, LOAD(in + i + W));
    take(a2, LOAD(in + i + 2 * W));
    take(a3, LOAD(in + i + 3 * W));
  }
  for (; i + W <= n; i += W) take(a0, LOAD(in + i));
  if (i < n) {
    alignas(64) float buf[W];
    for (size_t j = 0; j < W; j++) buf[j] = pad;
    std::memcpy(buf, in + i, (n - i) * sizeof(float));
    a1 = step(a1, LOAD(buf));
    for (size_t j = i; j < n && nans; j++) *nans = *nans || !std::isfinite(in[j]);
  }
  if (nans) *nans = *nans || HAS_NAN(z);
  return lanes(step(step(a0, a1), step(a2, a3)));
}

// An odd function f with f(x) -> 1, from its tables (tables.hpp, made by gen_tables.py): on
// |x| below 0.5, |x| + |x| * R(|x|^2); from 0.5, the quarter-binade's polynomial around its
// midpoint, f(mid) carried in two floats. odd_parts gives, for ax = |x|, R(ax^2) and the
// two terms lead + rest of the value from 0.5 (lead = f(mid)'s leading float).
template <size_t NS, size_t NT>
inline void odd_parts(V ax, const float (&small)[NS], const float (&t)[NT][16], V& r, V& lead, V& rest) {
  V s2 = MUL(ax, ax);
  r = SET1(small[NS - 1]);
  for (size_t k = NS - 1; k-- > 0;) r = FMA(r, s2, SET1(small[k]));
  VI i = QUARTER_INDEX(ax);
  V u = SUB(ax, LOOKUP16(i, t[0]));
  V p = LOOKUP16(i, t[NT - 1]);
  for (size_t k = NT - 1; k-- > 3;) p = FMA(p, u, LOOKUP16(i, t[k]));
  lead = LOOKUP16(i, t[1]);
  rest = FMA(p, u, LOOKUP16(i, t[2]));
}

// f(x); from the cutoff, 1. Then x's sign; NaN stays NaN.
template <size_t NS, size_t NT>
inline V odd_to_one(V x, const float (&small)[NS], const float (&t)[NT][16], float cutoff) {
  V ax = ABS(x), r, lead, rest;
  odd_parts(ax, small, t, r, lead, rest);
  V below = FMA(ax, r, ax);
  V above = ADD(lead, rest);
  V y = SELECT_LT(ax, SET1(0.5f), below, SELECT_LT(ax, SET1(cutoff), above, SET1(1.0f)));
  return SELECT_NAN(x, x, OR_SIGN(y, x));
}

// erf(ax) - z for 0 <= ax < erf's cutoff and z within a factor 2 of erf(ax): the leading
// term minus z is exact (Sterbenz), so the difference keeps the bits erf(ax) rounded to
// float32 would lose.
inline V erf_minus(V ax, V z) {
  V r, lead, rest;
  odd_parts(ax, tables::erf_small, tables::erf_table, r, lead, rest);
  return SELECT_LT(ax, SET1(0.5f), FMA(ax, r, SUB(ax, z)), ADD(SUB(lead, z), rest));
}

// erf^-1(z): Giles's single-precision approximation ("Approximating the erfinv function",
// GPU Computing Gems, 2011; about 3.6 ulp in float32), then one Newton step on
// erf(x) = |z| whose residual is computed without cancellation: erf_minus below |z| = 0.9,
// (1 - |z|) - erfc(x0) from there (1 - |z| is exact). |z| below 2^-14 gives
// |z| * sqrt(pi) / 2 (the next term is under 2^-29 of it) in two parts; |z| = 1 gives
// infinity, |z| > 1 and NaN NaN; the sign is z's.
inline V erfinv(V z) {
  // sqrt(pi) / 2 = 0x1.c5bf891b4ef6ap-1 = kHalfRootPi + kHalfRootPiLo
  constexpr float kHalfRootPi = 0x1.c5bf8ap-1f, kHalfRootPiLo = -0x1.c96212p-26f;
  V one = SET1(1.0f);
  V az = ABS(z);
  V omz = SUB(one, az);
  V w = NEG(SLEEF(log, u10)(MUL(omz, ADD(one, az))));
  V wc = SUB(w, SET1(2.5f));
  V pc = SET1(2.81022636e-08f);
  for (float c : {3.43273939e-07f, -3.5233877e-06f, -4.39150654e-06f, 0.00021858087f, -0.00125372503f,
                  -0.00417768164f, 0.246640727f, 1.50140941f})
    pc = FMA(pc, wc, SET1(c));
  V wt = SUB(SQRT(w), SET1(3.0f));
  V pt = SET1(-0.000200214257f);
  for (float c : {0.000100950558f, 0.00134934322f, -0.00367342844f, 0.00573950773f, -0.0076224613f,
                  0.00943887047f, 1.00167406f, 2.83297682f})
    pt = FMA(pt, wt, SET1(c));
  V x0 = MUL(SELECT_LT(w, SET1(5.0f), pc, pt), az);
  V res = erf_minus(x0, az);
  if (ANY_GE(az, SET1(0.9f))) res = SELECT_LT(az, SET1(0.9f), res, SUB(omz, SLEEF(erfc, u15)(x0)));
  // 1 / erf'(x0) = sqrt(pi) / 2 * e^(x0^2)
  V slope = MUL(SET1(kHalfRootPi), SLEEF(exp, u10)(MUL(x0, x0)));
  V x1 = FMA(NEG(res), slope, x0);
  V tiny = FMA(az, SET1(kHalfRootPi), MUL(az, SET1(kHalfRootPiLo)));
  V y = SELECT_LT(az, SET1(0x1p-14f), tiny, x1);
  constexpr float inf = std::numeric_limits<float>::infinity();
  y = SELECT_LT(az, one, y, SELECT_LT(one, az, SET1(std::numeric_limits<float>::quiet_NaN()), SET1(inf)));
  return SELECT_NAN(z, z, OR_SIGN(y, z));
}

bool any_nan(const float* in, size_t n) {
  size_t i = 0;
  int nan = 0;
  for (; i + W <= n; i += W) nan |= HAS_NAN(LOAD(in + i));
  for (; i < n; i++) nan |= std::isnan(in[i]);
  return nan != 0;
}

void unary(UnaryOp op, const float* in, float* out, size_t n) {
  switch (op) {
    case UnaryOp::exp: return map(in, out, n, [](V x) { return SLEEF(exp, u10)(x); });
    // expm1(x) and log1p(x) are x itself for |x| < 2^-25 (SLEEF's flush denormals to 0).
    case UnaryOp::expm1:
      return map(in, out, n, [](V x) { return SELECT_LT(ABS(x), SET1(0x1p-25f), x, SLEEF(expm1, u10)(x)); });
    case UnaryOp::log: return map(in, out, n, [](V x) { return SLEEF(log, u10)(x); });
    // SLEEF's log1pf overflows to inf above 1e38, where log1p(x) rounds as log(x) does.
    case UnaryOp::log1p:
      return map(in, out, n, [](V x) {
        V y = SELECT_LT(ABS(x), SET1(0x1p-25f), x, SLEEF(log1p, u10)(x));
        return ANY_GE(x, SET1(1e38f)) ? SELECT_LT(x, SET1(1e38f), y, SLEEF(log, u10)(x)) : y;
      });
    case UnaryOp::sin: return map(in, out, n, [](V x) { return SLEEF(sin, u10)(x); });
    case UnaryOp::cos: return map(in, out, n, [](V x) { return SLEEF(cos, u10)(x); });
    case UnaryOp::tanh:
      return map(in, out, n, [](V x) { return odd_to_one(x, tables::tanh_small, tables::tanh_table, tables::tanh_cutoff); });
    case UnaryOp::erf:
      return map(in, out, n, [](V x) { return odd_to_one(x, tables::erf_small, tables::erf_table, tables::erf_cutoff); });
    case UnaryOp::erfinv: return map(in, out, n, [](V x) { return erfinv(x); });
    case UnaryOp::sqrt: return map(in, out, n, [](V x) { return SQRT(x); });
    case UnaryOp::rsqrt: return map(in, out, n, [](V x) { return DIV(SET1(1.0f), SQRT(x)); });
    case UnaryOp::negative: return map(in, out, n, [](V x) { return NEG(x); });
    case UnaryOp::abs: return map(in, out, n, [](V x) { return ABS(x); });
    case UnaryOp::square: return map(in, out, n, [](V x) { return MUL(x, x); });
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

void binary(BinaryOp op, Operands layout, const float* a, const float* b, float* out, size_t n) {
  switch (op) {
    case BinaryOp::pow:
      // x^2 is x * x (correctly rounded, as the C library's powf is there); Nx.variance
      // squares this way.
      if (layout == Operands::scalar_b && b[0] == 2.0f) return map(a, out, n, [](V x) { return MUL(x, x); });
      return map2(layout, a, b, out, n, [](V x, V y) { return SLEEF(pow, u10)(x, y); });
    case BinaryOp::add: return map2(layout, a, b, out, n, [](V x, V y) { return ADD(x, y); });
    case BinaryOp::subtract: return map2(layout, a, b, out, n, [](V x, V y) { return SUB(x, y); });
    case BinaryOp::multiply: return map2(layout, a, b, out, n, [](V x, V y) { return MUL(x, y); });
    case BinaryOp::divide: return map2(layout, a, b, out, n, [](V x, V y) { return DIV(x, y); });
    // MLX: isnan(x) ? x : (x > y ? x : y), and x < y for minimum.
    case BinaryOp::maximum:
      return map2(layout, a, b, out, n, [](V x, V y) { return SELECT_NAN(x, x, SELECT_LT(y, x, x, y)); });
    case BinaryOp::minimum:
      return map2(layout, a, b, out, n, [](V x, V y) { return SELECT_NAN(x, x, SELECT_LT(x, y, x, y)); });
  }
}

float reduce(ReduceOp op, const float* in, size_t n) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  switch (op) {
    case ReduceOp::sum:
      return fold(in, n, 0.0f, [](V acc, V x) { return ADD(acc, x); }, [](V v) { return HSUM(v); });
    // MAX/MIN return their second operand where either is NaN: NaNs are looked for apart,
    // in the rows where x - x was not always 0.
    case ReduceOp::max: {
      bool odd = false;
      float r = fold(in, n, -inf, [](V acc, V x) { return MAX(acc, x); }, [](V v) { return HMAX(v); }, &odd);
      return odd && any_nan(in, n) ? std::numeric_limits<float>::quiet_NaN() : r;
    }
    case ReduceOp::min: {
      bool odd = false;
      float r = fold(in, n, inf, [](V acc, V x) { return MIN(acc, x); }, [](V v) { return HMIN(v); }, &odd);
      return odd && any_nan(in, n) ? std::numeric_limits<float>::quiet_NaN() : r;
    }
  }
  return 0.0f;
}

// SLEEF's log of one float (the value EmilyLog gives it).
float log1(float s) {
  alignas(64) float b[W];
  STORE(b, SLEEF(log, u10)(SET1(s)));
  return b[0];
}

void row(RowOp op, const float* in, float* out, size_t n) {
  float m = reduce(ReduceOp::max, in, n);
  V vm = SET1(m);
  // e = exp(x - m), into out, then its sum as reduce() sums (the composed form's order).
  map(in, out, n, [&](V x) { return SLEEF(exp, u10)(SUB(x, vm)); });
  float s = reduce(ReduceOp::sum, out, n);
  switch (op) {
    case RowOp::softmax_div: {
      V vs = SET1(s);
      return map(out, out, n, [&](V e) { return DIV(e, vs); });
    }
    case RowOp::softmax_mul: {
      V r = SET1(1.0f / s);
      return map(out, out, n, [&](V e) { return MUL(r, e); });
    }
    case RowOp::log_softmax: {
      V nl = SET1(-log1(s));
      return map(in, out, n, [&](V x) { return ADD(nl, SUB(x, vm)); });
    }
    case RowOp::logsumexp:
      out[0] = std::isinf(m) ? m : log1(s) + m;
      return;
  }
}

void dequantize_row(const QuantizedMatrix& q, size_t r, float* out) {
  size_t per_word = 32 / static_cast<size_t>(q.bits), groups = q.cols / q.group_size;
  const uint32_t* w = q.w + r * (q.cols / per_word);
  const float* s = q.scales + r * groups;
  const float* b = q.biases + r * groups;
  for (size_t g = 0; g < groups; g++) {
    V vs = SET1(s[g]), vb = SET1(b[g]);
    size_t c = g * q.group_size, end = c + q.group_size;
    if (q.bits == 4)
      for (; c < end; c += W) STORE(out + c, FMA(CODES4(w + c / 8), vs, vb));
    else
      for (; c < end; c += W) STORE(out + c, FMA(CODES8(w + c / 4), vs, vb));
  }
}

// qmatmul's layout of x for 4-bit codes. A block of W words holds 8W codes, and lane j of
// the k-th nibble (0-7) of the block's words is element 8j + k of the block; x is stored in
// the same order, plane k of a block being W consecutive floats, so one code vector meets one
// load of x. 8-bit codes keep x's order. Rows are zero-padded to a whole number of blocks.
size_t qstride(const QuantizedMatrix& q) { return (q.cols + 8 * W - 1) / (8 * W) * (8 * W); }

void qprepare(const QuantizedMatrix& q, const float* x, size_t m, float* xr, float* sums) {
  size_t stride = qstride(q), groups = q.cols / q.group_size;
  for (size_t i = 0; i < m; i++) {
    const float* xi = x + i * q.cols;
    float* ri = xr + i * stride;
    std::fill(ri, ri + stride, 0.0f);
    if (q.bits == 4) {
      for (size_t c = 0; c < q.cols; c++) {
        size_t b = c / (8 * W), e = c % (8 * W);
        ri[b * 8 * W + (e % 8) * W + e / 8] = xi[c];
      }
    } else {
      std::copy(xi, xi + q.cols, ri);
    }
    for (size_t g = 0; g < groups; g++) sums[i * groups + g] = reduce(ReduceOp::sum, xi + g * q.group_size, q.group_size);
  }
}

// The code vector of nibble K of each word in `words` (K a constant).
template <int K>
inline V nibble(VI words) {
  return NIBBLE(words, 4 * K);
}

// Rows [r0, r1) of q times M prepared rows of x. Per block of W words: the eight nibble
// vectors times x's planes, summed, times the block's scales (lane j takes its word's group);
// then, per row, the biases times x's group sums.
template <size_t M>
void qmatmul_rows(const QuantizedMatrix& q, const float* xr, const float* sums, float* out, size_t ldo, size_t r0,
                  size_t r1) {
  size_t groups = q.cols / q.group_size, stride = qstride(q);
  size_t words = q.cols * static_cast<size_t>(q.bits) / 32;
  alignas(64) int lane_group[W];
  for (size_t j = 0; j < W; j++) lane_group[j] = q.group_size <= 8 * W ? static_cast<int>(8 * j / q.group_size) : 0;
  VI sidx = LOADI(lane_group);
  size_t block_groups = std::max<size_t>(1, 8 * W / q.group_size);
  for (size_t r = r0; r < r1; r++) {
    const uint32_t* wr = q.w + r * words;
    const float* s = q.scales + r * groups;
    const float* bi = q.biases + r * groups;
    V tot[M], bt[M];
    for (size_t i = 0; i < M; i++) tot[i] = SET1(0.0f), bt[i] = SET1(0.0f);
    if (q.bits == 4) {
      alignas(64) uint32_t tail[W];
      for (size_t w0 = 0, b = 0; w0 < words; w0 += W, b++) {
        const uint32_t* pw = wr + w0;
        if (words - w0 < W) {
          std::fill(tail, tail + W, 0u);
          std::memcpy(tail, pw, (words - w0) * sizeof(uint32_t));
          pw = tail;
        }
        VI dw = LOADI(pw);
        size_t g0 = w0 * 8 / q.group_size;
        V sv = PERMUTE(LOADN(s + g0, std::min(block_groups, groups - g0)), sidx);
        const float* xb = xr + b * 8 * W;
        V c0 = nibble<0>(dw), c1 = nibble<1>(dw), c2 = nibble<2>(dw), c3 = nibble<3>(dw);
        V c4 = nibble<4>(dw), c5 = nibble<5>(dw), c6 = nibble<6>(dw), c7 = nibble<7>(dw);
        for (size_t i = 0; i < M; i++) {
          const float* xi = xb + i * stride;
          V a = MUL(LOAD(xi), c0), e = MUL(LOAD(xi + W), c1);
          a = FMA(LOAD(xi + 2 * W), c2, a);
          e = FMA(LOAD(xi + 3 * W), c3, e);
          a = FMA(LOAD(xi + 4 * W), c4, a);
          e = FMA(LOAD(xi + 5 * W), c5, e);
          a = FMA(LOAD(xi + 6 * W), c6, a);
          e = FMA(LOAD(xi + 7 * W), c7, e);
          tot[i] = FMA(ADD(a, e), sv, tot[i]);
        }
      }
    } else {
      const auto* bytes = reinterpret_cast<const uint8_t*>(wr);
      for (size_t g = 0; g < groups; g++) {
        V acc[M];
        for (size_t i = 0; i < M; i++) acc[i] = SET1(0.0f);
        for (size_t c = g * q.group_size, end = c + q.group_size; c < end; c += W) {
          V codes = CODES8(bytes + c);
          for (size_t i = 0; i < M; i++) acc[i] = FMA(LOAD(xr + i * stride + c), codes, acc[i]);
        }
        V vs = SET1(s[g]);
        for (size_t i = 0; i < M; i++) tot[i] = FMA(acc[i], vs, tot[i]);
      }
    }
    for (size_t g = 0; g < groups; g += W) {
      size_t n = std::min<size_t>(W, groups - g);
      V vb = LOADN(bi + g, n);
      for (size_t i = 0; i < M; i++) bt[i] = FMA(vb, LOADN(sums + i * groups + g, n), bt[i]);
    }
    for (size_t i = 0; i < M; i++) out[i * ldo + r] = HSUM(tot[i]) + HSUM(bt[i]);
  }
}

void qmatmul(const QuantizedMatrix& q, const float* xr, const float* sums, size_t m, float* out, size_t ldo,
             size_t r0, size_t r1) {
  switch (m) {
    case 1:
      return qmatmul_rows<1>(q, xr, sums, out, ldo, r0, r1);
    case 2:
      return qmatmul_rows<2>(q, xr, sums, out, ldo, r0, r1);
    case 3:
      return qmatmul_rows<3>(q, xr, sums, out, ldo, r0, r1);
    default:
      return qmatmul_rows<4>(q, xr, sums, out, ldo, r0, r1);
  }
}

}  // namespace

const Isa isa = {EMILY_ISA_STR, unary, binary, reduce, row, dequantize_row, qstride, qprepare, qmatmul};

}  // namespace emily::kernels::EMILY_ISA_NS
