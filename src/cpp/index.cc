// Indexing ops: take, gather, scatter and their axis forms.
// The functions mirror index_table! in src/ops/index.rs (same names, same argument order).
#include "shim.hpp"

using namespace emily;

extern "C" {

// take(a, indices): indices into the flattened array.
EMILY_API int emily_take(emily_stream s, const emily_array* a, const emily_array* indices,
                         emily_array** out) {
  EMILY_GUARD(put(out, mx::take(a->a, indices->a, stream(s))))
}

EMILY_API int emily_take_axis(emily_stream s, const emily_array* a, const emily_array* indices,
                              int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, mx::take(a->a, indices->a, static_cast<int>(axis), stream(s))))
}

EMILY_API int emily_take_along_axis(emily_stream s, const emily_array* a,
                                    const emily_array* indices, int64_t axis,
                                    emily_array** out) {
  EMILY_GUARD(put(out, mx::take_along_axis(a->a, indices->a, static_cast<int>(axis), stream(s))))
}

EMILY_API int emily_put_along_axis(emily_stream s, const emily_array* a,
                                   const emily_array* indices, const emily_array* values,
                                   int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, mx::put_along_axis(a->a, indices->a, values->a, static_cast<int>(axis),
                                          stream(s))))
}

EMILY_API int emily_scatter_add_axis(emily_stream s, const emily_array* a,
                                     const emily_array* indices, const emily_array* values,
                                     int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, mx::scatter_add_axis(a->a, indices->a, values->a, static_cast<int>(axis),
                                            stream(s))))
}

EMILY_API int emily_gather(emily_stream s, const emily_array* a, emily_arrays indices,
                           emily_ints axes, emily_ints slice_sizes, emily_array** out) {
  EMILY_GUARD(put(out, mx::gather(a->a, arrays(indices), ints(axes), shape(slice_sizes),
                                  stream(s))))
}

#define EMILY_SCATTER_OPS(X) X(scatter) X(scatter_add) X(scatter_prod) X(scatter_max) X(scatter_min)
#define X(name)                                                                                 \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_arrays indices,        \
                             const emily_array* updates, emily_ints axes, emily_array** out) {  \
    EMILY_GUARD(put(out, mx::name(a->a, arrays(indices), updates->a, ints(axes), stream(s))))   \
  }
EMILY_SCATTER_OPS(X)
#undef X
}
