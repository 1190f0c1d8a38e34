// Elementwise unary ops: int emily_<op>(emily_stream s, const emily_array* a, emily_array** out).
// Declared in src/ops/unary.ops.
#include "cpu_kernels.hpp"
#include "shim.hpp"

#define EMILY_UNARY_OPS(X)                                                                  \
  X(abs) X(negative) X(sign) X(logical_not) X(bitwise_invert) X(floor) X(ceil) X(round)  \
  X(square) X(reciprocal) X(log2) X(log10) X(tan) X(arcsin) X(arccos) X(arctan) X(sinh)   \
  X(cosh) X(arcsinh) X(arccosh) X(arctanh) X(isnan) X(isinf) X(isfinite)                  \
  X(isposinf) X(isneginf) X(real) X(imag) X(conjugate) X(degrees) X(radians)              \
  X(stop_gradient) X(copy)

// The ops Emily's CPU kernels also compute (cpu_kernels.cc): on a CPU stream with a float32,
// float16 or bfloat16 array they build Emily's primitive, elsewhere MLX's.
#define EMILY_KERNEL_UNARY_OPS(X)                                                   \
  X(exp) X(expm1) X(log) X(log1p) X(sin) X(cos) X(tanh) X(sigmoid) X(erf) X(erfinv) \
  X(sqrt) X(rsqrt)

using namespace emily;

extern "C" {
#define X(name)                                                                   \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_array** out) { \
    EMILY_GUARD(put(out, mx::name(a->a, stream(s))))                              \
  }
EMILY_UNARY_OPS(X)
#undef X

#define X(name)                                                                   \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_array** out) { \
    EMILY_GUARD({                                                                 \
      auto st = stream(s);                                                        \
      auto fast = kernels::unary(kernels::UnaryOp::name, a->a, st);               \
      put(out, fast ? std::move(*fast) : mx::name(a->a, st));                     \
    })                                                                            \
  }
EMILY_KERNEL_UNARY_OPS(X)
#undef X
}
