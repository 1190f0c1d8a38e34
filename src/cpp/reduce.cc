// Reductions over axes, arg-reductions, cumulative ops.
// Declared in src/ops/reduce.ops.
#include "cpu_kernels.hpp"
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
#define EMILY_REDUCE_OPS(X) X(prod) X(all) X(any) X(median)

// The ones Emily's CPU kernels also compute (cpu_kernels.cc) over trailing axes of float32,
// float16 and bfloat16 arrays on a CPU stream; MLX's primitives elsewhere.
#define EMILY_KERNEL_REDUCE_OPS(X) X(sum) X(max) X(min)

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
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_ints axes,          \
                             bool keepdims, emily_array** out) {                             \
    EMILY_GUARD({                                                                            \
      auto st = stream(s);                                                                   \
      auto ax = ints(axes);                                                                  \
      auto fast = kernels::reduce(kernels::ReduceOp::name, a->a, ax, keepdims, st);          \
      put(out, fast ? std::move(*fast) : mx::name(a->a, ax, keepdims, st));                  \
    })                                                                                       \
  }
EMILY_KERNEL_REDUCE_OPS(X)
#undef X

// MLX's mean is its sum times 1/n; the sum is Emily's kernel where reduce() builds one.
EMILY_API int emily_mean(emily_stream s, const emily_array* a, emily_ints axes, bool keepdims,
                         emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    auto ax = ints(axes);
    auto fast = kernels::reduce(kernels::ReduceOp::sum, a->a, ax, keepdims, st);
    if (fast) {
      double n = static_cast<double>(a->a.size()) / static_cast<double>(std::max<size_t>(1, fast->size()));
      put(out, mx::multiply(*fast, mx::array(1.0 / n, fast->dtype()), st));
    } else {
      put(out, mx::mean(a->a, ax, keepdims, st));
    }
  })
}

#define X(name)                                                                              \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, int64_t axis, bool reverse, \
                             bool inclusive, emily_array** out) {                            \
    EMILY_GUARD(put(out, mx::name(a->a, to_int(axis, "axis"), reverse, inclusive, stream(s)))) \
  }
EMILY_SCAN_OPS(X)
#undef X

EMILY_API int emily_logsumexp(emily_stream s, const emily_array* a, emily_ints axes, bool keepdims,
                              emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    auto ax = ints(axes);
    auto fast = kernels::logsumexp(a->a, ax, keepdims, st);
    put(out, fast ? std::move(*fast) : mx::logsumexp(as_float(a->a, st), ax, keepdims, st));
  })
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
