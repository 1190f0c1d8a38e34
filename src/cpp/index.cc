// Indexing ops: take, gather, scatter and their axis forms.
// The functions mirror index_table! in src/ops/index.rs (same names, same argument order).
#include "shim.hpp"

using namespace emily;

namespace {

// MLX's CUDA gather kernels do not check bounds: an index outside the array makes an
// illegal memory access, which poisons the CUDA context of the whole process (every later
// GPU call fails). On a GPU stream Emily clamps gather indices into the axis (after MLX's
// wrapping of negative indices), as Nx backends do, and refuses to index an empty axis.
// The CPU keeps MLX's own behaviour. `reference` is MLX's node on the raw indices, built
// first so bad arguments get MLX's own messages.
mx::array safe_index(const mx::array& idx, int size, mx::Stream s, const char* op) {
  if (s.device != mx::Device::gpu || idx.size() == 0) return idx;
  if (size == 0) throw std::invalid_argument(std::string("[") + op + "] index into an empty axis");
  auto n = mx::array(size, idx.dtype());
  auto wrapped = mx::issubdtype(idx.dtype(), mx::signedinteger)
                     ? mx::where(mx::less(idx, mx::array(0, idx.dtype()), s), mx::add(idx, n, s), idx, s)
                     : idx;
  return mx::clip(wrapped, mx::array(0, idx.dtype()), mx::array(size - 1, idx.dtype()), s);
}

int axis_size(const mx::array& a, int64_t axis) {
  int nd = static_cast<int>(a.ndim());
  int ax = static_cast<int>(axis < 0 ? axis + nd : axis);
  return (ax >= 0 && ax < nd) ? a.shape(ax) : 0;
}

}  // namespace

extern "C" {

// take(a, indices): indices into the flattened array.
EMILY_API int emily_take(emily_stream s, const emily_array* a, const emily_array* indices,
                         emily_array** out) {
  EMILY_GUARD({
    auto ref = mx::take(a->a, indices->a, stream(s));
    if (stream(s).device != mx::Device::gpu) return put(out, std::move(ref));
    put(out, mx::take(a->a, safe_index(indices->a, static_cast<int>(a->a.size()), stream(s), "take"),
                      stream(s)));
  })
}

EMILY_API int emily_take_axis(emily_stream s, const emily_array* a, const emily_array* indices,
                              int64_t axis, emily_array** out) {
  EMILY_GUARD({
    auto ref = mx::take(a->a, indices->a, static_cast<int>(axis), stream(s));
    if (stream(s).device != mx::Device::gpu) return put(out, std::move(ref));
    put(out, mx::take(a->a, safe_index(indices->a, axis_size(a->a, axis), stream(s), "take"),
                      static_cast<int>(axis), stream(s)));
  })
}

EMILY_API int emily_take_along_axis(emily_stream s, const emily_array* a,
                                    const emily_array* indices, int64_t axis,
                                    emily_array** out) {
  EMILY_GUARD({
    auto ref = mx::take_along_axis(a->a, indices->a, static_cast<int>(axis), stream(s));
    if (stream(s).device != mx::Device::gpu) return put(out, std::move(ref));
    put(out, mx::take_along_axis(
                 a->a, safe_index(indices->a, axis_size(a->a, axis), stream(s), "take_along_axis"),
                 static_cast<int>(axis), stream(s)));
  })
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
  EMILY_GUARD({
    auto idx = arrays(indices);
    auto ax = ints(axes);
    auto ref = mx::gather(a->a, idx, ax, shape(slice_sizes), stream(s));
    if (stream(s).device != mx::Device::gpu || idx.size() != ax.size()) return put(out, std::move(ref));
    for (size_t i = 0; i < idx.size(); i++) idx[i] = safe_index(idx[i], axis_size(a->a, ax[i]), stream(s), "gather");
    put(out, mx::gather(a->a, idx, ax, shape(slice_sizes), stream(s)));
  })
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
