// Reductions over axes, arg-reductions, cumulative ops.
// Declared in src/ops/reduce.ops.
#include "shim.hpp"

using namespace emily;

namespace {

// MLX 0.32 computes logsumexp of integer and bool arrays wrongly (unsigned: infinity;
// bool: off by one); their result is float32 anyway, so convert first.
mx::array as_float(const mx::array& a, mx::Stream s) {
  return mx::issubdtype(a.dtype(), mx::inexact) ? a : mx::astype(a, mx::float32, s);
}

}  // namespace

// int emily_<op>(emily_stream s, const emily_array* a, emily_ints axes, bool keepdims,
//                emily_array** out)
#define EMILY_REDUCE_OPS(X) \
  X(sum) X(prod) X(max) X(min) X(all) X(any) X(mean) X(median)

// int emily_<op>(emily_stream s, const emily_array* a, int64_t axis, bool reverse,
//                bool inclusive, emily_array** out)
#define EMILY_SCAN_OPS(X) X(cumsum) X(cumprod) X(cummax) X(cummin)

extern "C" {

#define X(name)                                                                              \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_ints axes,          \
                             bool keepdims, emily_array** out) {                             \
    EMILY_GUARD(put(out, mx::name(a->a, ints(axes), keepdims, stream(s))))                   \
  }
EMILY_REDUCE_OPS(X)
#undef X

#define X(name)                                                                              \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, int64_t axis, bool reverse, \
                             bool inclusive, emily_array** out) {                            \
    EMILY_GUARD(put(out, mx::name(a->a, to_int(axis, "axis"), reverse, inclusive, stream(s)))) \
  }
EMILY_SCAN_OPS(X)
#undef X

EMILY_API int emily_logsumexp(emily_stream s, const emily_array* a, emily_ints axes, bool keepdims,
                              emily_array** out) {
  EMILY_GUARD(put(out, mx::logsumexp(as_float(a->a, stream(s)), ints(axes), keepdims, stream(s))))
}

EMILY_API int emily_logcumsumexp(emily_stream s, const emily_array* a, int64_t axis, bool reverse, bool inclusive,
                                 emily_array** out) {
  EMILY_GUARD(put(out, mx::logcumsumexp(as_float(a->a, stream(s)), to_int(axis, "axis"), reverse, inclusive,
                                        stream(s))))
}

EMILY_API int emily_var(emily_stream s, const emily_array* a, emily_ints axes, bool keepdims,
                        int64_t ddof, emily_array** out) {
  EMILY_GUARD(put(out, mx::var(a->a, ints(axes), keepdims, to_int(ddof, "ddof"), stream(s))))
}

EMILY_API int emily_std(emily_stream s, const emily_array* a, emily_ints axes, bool keepdims,
                        int64_t ddof, emily_array** out) {
  EMILY_GUARD(put(out, mx::std(a->a, ints(axes), keepdims, to_int(ddof, "ddof"), stream(s))))
}

EMILY_API int emily_argmax(emily_stream s, const emily_array* a, int64_t axis, bool keepdims,
                           emily_array** out) {
  EMILY_GUARD(put(out, mx::argmax(a->a, to_int(axis, "axis"), keepdims, stream(s))))
}

EMILY_API int emily_argmin(emily_stream s, const emily_array* a, int64_t axis, bool keepdims,
                           emily_array** out) {
  EMILY_GUARD(put(out, mx::argmin(a->a, to_int(axis, "axis"), keepdims, stream(s))))
}

}  // extern "C"
