// Indexing ops: take, gather, scatter and their axis forms.
// The functions mirror index_table! in src/ops/index.rs (same names, same argument order).
#include <algorithm>

#include "shim.hpp"

using namespace emily;

// MLX 0.32 does not bounds-check indices: an index past the end reads (or writes) outside
// the array and can kill the VM. Every index here is normalized (negative counts from the
// end, as in MLX) and clamped so that a window of `extent` elements starting at it fits in
// `dim` (as XLA and Nx's gather do; a scatter's out-of-range update lands on the edge).
namespace {

mx::array clamp_index(const mx::array& idx, int64_t dim, int64_t extent, const char* op, mx::Stream s) {
  if (!mx::issubdtype(idx.dtype(), mx::integer))
    throw std::invalid_argument(std::string(op) + " indices must be integers");
  if (extent > dim || (dim == 0 && idx.size() > 0))
    throw std::invalid_argument(std::string(op) + " cannot index an axis of size " + std::to_string(dim) +
                                " with a window of " + std::to_string(extent));
  auto i = mx::astype(idx, mx::int64, s);
  auto d = mx::array(dim);
  i = mx::where(mx::less(i, mx::array(int64_t{0}), s), mx::add(i, d, s), i, s);
  i = mx::minimum(mx::maximum(i, mx::array(int64_t{0}), s), mx::array(dim - extent), s);
  return mx::astype(i, mx::int32, s);
}

int axis_of(int64_t axis, size_t ndim, const char* op) {
  int64_t v = axis;
  emily_ints one{&v, 1};
  return axes_of(one, ndim, op)[0];
}

// For gather and scatter: one index array per axis, each clamped for its axis's window.
std::vector<mx::array> clamp_indices(const mx::array& a, emily_arrays indices, const std::vector<int>& axes,
                                     const std::vector<int64_t>& extent, const char* op, mx::Stream s) {
  if (indices.len != axes.size())
    throw std::invalid_argument(std::string(op) + " needs one index array per axis (" +
                                std::to_string(axes.size()) + "), got " + std::to_string(indices.len));
  std::vector<mx::array> out;
  for (size_t i = 0; i < indices.len; i++)
    out.push_back(clamp_index(indices.ptr[i]->a, a.shape(axes[i]), extent[axes[i]], op, s));
  return out;
}

mx::array take_flat(const mx::array& a, const mx::array& idx, mx::Stream s) {
  return mx::take(a, clamp_index(idx, static_cast<int64_t>(a.size()), 1, "[take]", s), s);
}

mx::array take_axis(const mx::array& a, const mx::array& idx, int64_t axis, mx::Stream s) {
  int ax = axis_of(axis, a.ndim(), "[take_axis]");
  return mx::take(a, clamp_index(idx, a.shape(ax), 1, "[take_axis]", s), ax, s);
}

mx::array gather(const mx::array& a, emily_arrays indices, emily_ints axes, emily_ints slice_sizes, mx::Stream s) {
  auto ax = axes_of(axes, a.ndim(), "[gather]");
  auto sizes = shape(slice_sizes);
  if (sizes.size() != a.ndim())
    throw std::invalid_argument("[gather] needs one slice size per axis of the array");
  std::vector<int64_t> extent;
  for (size_t i = 0; i < sizes.size(); i++) {
    if (sizes[i] < 0 || sizes[i] > a.shape(i))
      throw std::invalid_argument("[gather] slice size " + std::to_string(sizes[i]) + " does not fit axis " +
                                  std::to_string(i));
    extent.push_back(sizes[i]);
  }
  auto idx = clamp_indices(a, indices, ax, extent, "[gather]", s);
  // MLX divides by the slice and index sizes: make empty results directly.
  mx::Shape idx_shape;
  for (auto& i : idx) idx_shape = mx::broadcast_shapes(idx_shape, i.shape());
  bool empty = std::any_of(sizes.begin(), sizes.end(), [](int d) { return d == 0; }) ||
               std::any_of(idx_shape.begin(), idx_shape.end(), [](int d) { return d == 0; });
  if (empty) {
    auto out_shape = idx_shape;
    out_shape.insert(out_shape.end(), sizes.begin(), sizes.end());
    return mx::zeros(out_shape, a.dtype(), s);
  }
  return mx::gather(a, idx, ax, sizes, s);
}

// The window a scatter writes along each axis: the trailing a.ndim() dimensions of updates.
std::vector<int64_t> scatter_extent(const mx::array& a, const mx::array& updates, const char* op) {
  if (updates.ndim() < a.ndim())
    throw std::invalid_argument(std::string(op) + " updates need the index dimensions followed by one "
                                "dimension per axis of the array");
  std::vector<int64_t> extent;
  size_t lead = updates.ndim() - a.ndim();
  for (size_t i = 0; i < a.ndim(); i++) {
    if (updates.shape(lead + i) > a.shape(i))
      throw std::invalid_argument(std::string(op) + " update window is larger than the array along axis " +
                                  std::to_string(i));
    extent.push_back(updates.shape(lead + i));
  }
  return extent;
}

template <typename F>
mx::array scatter_with(F f, const char* op, const mx::array& a, emily_arrays indices, const mx::array& updates,
                       emily_ints axes, mx::Stream s) {
  auto ax = axes_of(axes, a.ndim(), op);
  auto idx = clamp_indices(a, indices, ax, scatter_extent(a, updates, op), op, s);
  // Nothing to write (MLX divides by the update size): the array, as the op's type would be.
  if (updates.size() == 0 || a.size() == 0) {
    return mx::astype(a, a.dtype(), s);
  }
  return f(a, idx, updates, ax, s);
}

}  // namespace

extern "C" {

// take(a, indices): indices into the flattened array.
EMILY_API int emily_take(emily_stream s, const emily_array* a, const emily_array* indices,
                         emily_array** out) {
  EMILY_GUARD(put(out, take_flat(a->a, indices->a, stream(s))))
}

EMILY_API int emily_take_axis(emily_stream s, const emily_array* a, const emily_array* indices,
                              int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, take_axis(a->a, indices->a, axis, stream(s))))
}

EMILY_API int emily_take_along_axis(emily_stream s, const emily_array* a,
                                    const emily_array* indices, int64_t axis,
                                    emily_array** out) {
  EMILY_GUARD({
    int ax = axis_of(axis, a->a.ndim(), "[take_along_axis]");
    auto idx = clamp_index(indices->a, a->a.shape(ax), 1, "[take_along_axis]", stream(s));
    put(out, mx::take_along_axis(a->a, idx, ax, stream(s)));
  })
}

EMILY_API int emily_put_along_axis(emily_stream s, const emily_array* a,
                                   const emily_array* indices, const emily_array* values,
                                   int64_t axis, emily_array** out) {
  EMILY_GUARD({
    int ax = axis_of(axis, a->a.ndim(), "[put_along_axis]");
    auto idx = clamp_index(indices->a, a->a.shape(ax), 1, "[put_along_axis]", stream(s));
    put(out, mx::put_along_axis(a->a, idx, values->a, ax, stream(s)));
  })
}

EMILY_API int emily_scatter_add_axis(emily_stream s, const emily_array* a,
                                     const emily_array* indices, const emily_array* values,
                                     int64_t axis, emily_array** out) {
  EMILY_GUARD({
    int ax = axis_of(axis, a->a.ndim(), "[scatter_add_axis]");
    auto idx = clamp_index(indices->a, a->a.shape(ax), 1, "[scatter_add_axis]", stream(s));
    put(out, mx::scatter_add_axis(a->a, idx, values->a, ax, stream(s)));
  })
}

EMILY_API int emily_gather(emily_stream s, const emily_array* a, emily_arrays indices,
                           emily_ints axes, emily_ints slice_sizes, emily_array** out) {
  EMILY_GUARD(put(out, gather(a->a, indices, axes, slice_sizes, stream(s))))
}

#define EMILY_SCATTER_OPS(X) X(scatter) X(scatter_add) X(scatter_prod) X(scatter_max) X(scatter_min)
#define X(name)                                                                                 \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_arrays indices,        \
                             const emily_array* updates, emily_ints axes, emily_array** out) {  \
    using Fn = mx::array (*)(const mx::array&, const std::vector<mx::array>&, const mx::array&,  \
                             const std::vector<int>&, mx::StreamOrDevice);                      \
    EMILY_GUARD(put(out, scatter_with(static_cast<Fn>(&mx::name), "[" #name "]", a->a, indices,  \
                                      updates->a, axes, stream(s))))                            \
  }
EMILY_SCATTER_OPS(X)
#undef X
}
