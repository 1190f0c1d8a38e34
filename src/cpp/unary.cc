// Elementwise unary ops: int emily_<op>(emily_stream s, const emily_array* a, emily_array** out).
// Declared in src/ops/unary.ops.
#include "shim.hpp"

#define EMILY_UNARY_OPS(X)                                                                  \
  X(abs) X(negative) X(sign) X(logical_not) X(bitwise_invert) X(floor) X(ceil) X(round)  \
  X(square) X(sqrt) X(rsqrt) X(reciprocal) X(exp) X(expm1) X(log) X(log1p) X(log2)        \
  X(log10) X(sin) X(cos) X(tan) X(arcsin) X(arccos) X(arctan) X(sinh) X(cosh) X(tanh)     \
  X(arcsinh) X(arccosh) X(arctanh) X(sigmoid) X(erf) X(erfinv) X(isnan) X(isinf)          \
  X(isfinite) X(isposinf) X(isneginf) X(real) X(imag) X(conjugate) X(degrees) X(radians)  \
  X(stop_gradient) X(copy)

using namespace emily;

extern "C" {
#define X(name)                                                                   \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_array** out) { \
    EMILY_GUARD(put(out, mx::name(a->a, stream(s))))                              \
  }
EMILY_UNARY_OPS(X)
#undef X
}
