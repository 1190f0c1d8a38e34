// Indexing ops: take, gather, scatter and their axis forms.
// Declared in src/ops/index.ops.
//
// MLX's kernels do not bounds-check index values: an index past the array reads or writes
// outside its buffer (a crash, or a corrupted heap). Index values are only known when the
// graph runs, so every op here makes them safe by construction, with a few elementwise nodes
// per index array:
// * gathers (take, take_axis, take_along_axis, gather) clamp indices into range; negative
//   indices in [-n, -1] count from the end (as in numpy and MLX). For gather with a slice
//   wider than 1 the start is clamped so that the whole slice fits (as in XLA).
// * scatters drop an update whose index (or slice) does not fit: the combining ones
//   (scatter_add/prod/max/min, scatter_add_axis) replace it with the combination's identity
//   at an in-range position, the replacing ones (scatter, put_along_axis) redirect it to a
//   scratch row past the end of the array that is sliced off afterwards.
#include <complex>
#include <limits>
#include <string>

#include "shim.hpp"

using namespace emily;

namespace {

std::string op_name(const char* op) { return std::string("[") + op + "] "; }

void check_index_dtype(const mx::array& idx, const char* op) {
  if (idx.dtype() == mx::bool_ || !mx::issubdtype(idx.dtype(), mx::integer)) {
    std::ostringstream msg;
    msg << op_name(op) << "indices must be integers, got " << idx.dtype();
    throw std::invalid_argument(msg.str());
  }
}

int norm_axis(int64_t axis, size_t ndim, const char* op) {
  int64_t n = static_cast<int64_t>(ndim);
  int64_t ax = axis < 0 ? axis + n : axis;
  if (ax < 0 || ax >= n)
    throw std::invalid_argument(op_name(op) + "axis " + std::to_string(axis) +
                                " is out of range for an array with " + std::to_string(ndim) +
                                " dimensions");
  return static_cast<int>(ax);
}

// The range of values of an integer dtype, as int64 (u64's top is capped at int64's).
std::pair<int64_t, int64_t> int_range(mx::Dtype dt) {
  switch (dt) {
    case mx::uint8: return {0, std::numeric_limits<uint8_t>::max()};
    case mx::uint16: return {0, std::numeric_limits<uint16_t>::max()};
    case mx::uint32: return {0, std::numeric_limits<uint32_t>::max()};
    case mx::uint64: return {0, std::numeric_limits<int64_t>::max()};
    case mx::int8: return {std::numeric_limits<int8_t>::min(), std::numeric_limits<int8_t>::max()};
    case mx::int16: return {std::numeric_limits<int16_t>::min(), std::numeric_limits<int16_t>::max()};
    case mx::int32: return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    default: return {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
  }
}

// Index values clamped into [lo, hi] in their own dtype (bounds outside the dtype's range
// are no bound: no node at all when both are).
mx::array clamp_in_dtype(const mx::array& idx, int64_t lo, int64_t hi, mx::Stream s) {
  auto [dmin, dmax] = int_range(idx.dtype());
  std::optional<mx::array> lo_a, hi_a;
  if (lo > dmin) lo_a = mx::array(lo, idx.dtype());
  if (hi < dmax) hi_a = mx::array(hi, idx.dtype());
  if (!lo_a && !hi_a) return idx;
  return mx::clip(idx, lo_a, hi_a, s);
}

// For an axis of n elements read one at a time: [-n, n - 1] (MLX's kernels add n to
// negative indices themselves).
mx::array clamp_single(const mx::array& idx, int64_t n, mx::Stream s) {
  return clamp_in_dtype(idx, -n, n - 1, s);
}

// Index values as int64 that keep their meaning for an axis of n elements (u64 values past
// n are capped at n, still out of range), negatives counted from the end: in range means
// 0 <= v < n.
mx::array normalized(const mx::array& idx, int64_t n, mx::Stream s) {
  mx::array w = idx;
  if (idx.dtype() == mx::uint64) w = mx::minimum(idx, mx::array(static_cast<uint64_t>(n), mx::uint64), s);
  w = mx::astype(w, mx::int64, s);
  if (mx::issubdtype(idx.dtype(), mx::signedinteger)) {
    w = mx::where(mx::less(w, mx::array(int64_t{0}), s), mx::add(w, mx::array(n), s), w, s);
  }
  return w;
}

// A slice of `width` elements starting at idx, for an axis of n >= width elements, clamped
// so that it fits: start in [0, n - width].
mx::array clamp_window(const mx::array& idx, int64_t n, int64_t width, mx::Stream s) {
  if (width <= 1) return width == 1 ? clamp_single(idx, n, s) : idx;
  if (!mx::issubdtype(idx.dtype(), mx::signedinteger)) return clamp_in_dtype(idx, 0, n - width, s);
  return mx::clip(normalized(idx, n, s), mx::array(int64_t{0}), mx::array(n - width), s);
}

// The index arrays checked, broadcast to one shape on the worker's stream (MLX would build
// that node on the calling thread's default stream) and converted to one dtype.
std::vector<mx::array> index_arrays(emily_arrays v, size_t ndim, const char* op, mx::Stream s) {
  auto idx = arrays(v);
  if (idx.size() > ndim)
    throw std::invalid_argument(op_name(op) + std::to_string(idx.size()) +
                                " index arrays for an array with " + std::to_string(ndim) +
                                " dimensions");
  if (idx.empty()) return idx;
  for (auto& i : idx) check_index_dtype(i, op);
  auto dt = mx::result_type(idx);
  if (!mx::issubdtype(dt, mx::integer)) {
    std::ostringstream msg;
    msg << op_name(op) << "index arrays of these dtypes promote to " << dt
        << ", not an integer type: give them one dtype";
    throw std::invalid_argument(msg.str());
  }
  idx = mx::broadcast_arrays(idx, s);
  for (auto& i : idx) i = i.dtype() == dt ? i : mx::astype(i, dt, s);
  return idx;
}

std::vector<int> index_axes(emily_ints axes, size_t n_indices, size_t ndim, const char* op) {
  if (axes.len != n_indices)
    throw std::invalid_argument(op_name(op) + std::to_string(n_indices) + " index arrays but " +
                                std::to_string(axes.len) + " axes");
  std::vector<int> out;
  for (size_t i = 0; i < axes.len; i++) {
    int ax = norm_axis(axes.ptr[i], ndim, op);
    for (int seen : out)
      if (seen == ax) throw std::invalid_argument(op_name(op) + "repeated axis " + std::to_string(ax));
    out.push_back(ax);
  }
  return out;
}

// The identity of a scatter's combination, as a 0-d array of `dt`.
mx::array identity_of(mx::Dtype dt, int kind) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  switch (kind) {
    case 1: return mx::array(0, dt);  // add
    case 2: return mx::array(1, dt);  // prod
    default: break;
  }
  bool highest = kind == 4;  // min: the highest value; max: the lowest
  if (dt == mx::bool_) return mx::array(highest);
  if (dt == mx::complex64) {
    float v = highest ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
    return mx::array(std::complex<float>(v, v));
  }
  if (mx::issubdtype(dt, mx::floating)) return mx::array(highest ? inf : -inf, dt);
  if (dt == mx::uint64) return mx::array(highest ? std::numeric_limits<uint64_t>::max() : uint64_t{0}, dt);
  auto [lo, hi] = int_range(dt);
  return mx::array(highest ? hi : lo, dt);
}

// scatter kinds: 0 replace, 1 add, 2 prod, 3 max, 4 min.
mx::array scatter_safe(int kind, const char* op, const mx::array& a, emily_arrays indices,
                       const mx::array& updates, emily_ints axes_in, mx::Stream s) {
  auto idx = index_arrays(indices, a.ndim(), op, s);
  auto axes = index_axes(axes_in, idx.size(), a.ndim(), op);
  mx::Shape idx_shape = idx.empty() ? mx::Shape{} : idx[0].shape();
  if (updates.ndim() != a.ndim() + idx_shape.size()) {
    throw std::invalid_argument(op_name(op) + "updates have " + std::to_string(updates.ndim()) +
                                " dimensions, expected " + std::to_string(idx_shape.size()) +
                                " (index) + " + std::to_string(a.ndim()) + " (array)");
  }
  for (size_t i = 0; i < idx_shape.size(); i++)
    if (updates.shape(i) != idx_shape[i])
      throw std::invalid_argument(op_name(op) + "the updates' leading dimensions must be the index shape");
  for (size_t d = 0; d < a.ndim(); d++) {
    int u = updates.shape(idx_shape.size() + d);
    if (u > a.shape(d))
      throw std::invalid_argument(op_name(op) + "update slice of " + std::to_string(u) +
                                  " elements along axis " + std::to_string(d) +
                                  " does not fit an axis of " + std::to_string(a.shape(d)));
  }
  auto upd = mx::astype(updates, a.dtype(), s);
  auto op_of = [&](const mx::array& src, std::vector<mx::array> ix, const mx::array& up) {
    switch (kind) {
      case 0: return mx::scatter(src, ix, up, axes, s);
      case 1: return mx::scatter_add(src, ix, up, axes, s);
      case 2: return mx::scatter_prod(src, ix, up, axes, s);
      case 3: return mx::scatter_max(src, ix, up, axes, s);
      default: return mx::scatter_min(src, ix, up, axes, s);
    }
  };
  // No updates (an empty array has none either): nothing is written, and MLX's kernel would
  // divide by the update's size.
  if (upd.size() == 0) return a;
  // No index arrays: one update at the origin, which fits.
  if (idx.empty()) return op_of(a, idx, upd);

  // Per index row: whether the slice it starts fits along every indexed axis.
  std::vector<mx::array> norm;
  std::optional<mx::array> valid;
  for (size_t k = 0; k < idx.size(); k++) {
    int64_t n = a.shape(axes[k]);
    int64_t u = updates.shape(idx_shape.size() + axes[k]);
    auto v = normalized(idx[k], n, s);
    auto ok = mx::logical_and(mx::greater_equal(v, mx::array(int64_t{0}), s),
                              mx::less_equal(v, mx::array(n - u), s), s);
    valid = valid ? mx::logical_and(*valid, ok, s) : ok;
    norm.push_back(std::move(v));
  }
  auto zero = mx::array(int64_t{0});
  if (kind == 0) {
    // Rows that do not fit write into scratch rows past the end of axes[0].
    int ax0 = axes[0];
    int64_t n0 = a.shape(ax0);
    int64_t u0 = updates.shape(idx_shape.size() + ax0);
    std::vector<mx::array> ix;
    for (size_t k = 0; k < norm.size(); k++)
      ix.push_back(mx::where(*valid, norm[k], k == 0 ? mx::array(n0) : zero, s));
    auto padded = mx::pad(a, std::vector<int>{ax0}, mx::Shape{0}, mx::Shape{static_cast<int>(u0)},
                          mx::array(0, a.dtype()), "constant", s);
    auto r = op_of(padded, ix, upd);
    mx::Shape start(a.ndim(), 0);
    return mx::slice(r, start, a.shape(), s);
  }
  // Rows that do not fit combine the identity into position 0.
  std::vector<mx::array> ix;
  for (auto& v : norm) ix.push_back(mx::where(*valid, v, zero, s));
  mx::Shape vshape = idx_shape;
  vshape.insert(vshape.end(), a.ndim(), 1);
  auto keep = mx::reshape(*valid, vshape, s);
  return op_of(a, ix, mx::where(keep, upd, identity_of(a.dtype(), kind), s));
}

// put_along_axis (replace) and scatter_add_axis (add).
mx::array scatter_axis_safe(bool add, const char* op, const mx::array& a, const mx::array& indices,
                            const mx::array& values, int64_t axis_in, mx::Stream s) {
  check_index_dtype(indices, op);
  int axis = norm_axis(axis_in, a.ndim(), op);
  if (indices.ndim() != a.ndim())
    throw std::invalid_argument(op_name(op) + "indices have " + std::to_string(indices.ndim()) +
                                " dimensions, the array " + std::to_string(a.ndim()));
  auto run = [&](const mx::array& src, const mx::array& ix, const mx::array& v) {
    return add ? mx::scatter_add_axis(src, ix, v, axis, s) : mx::put_along_axis(src, ix, v, axis, s);
  };
  // An empty array: MLX writes nothing (and returns it as it is).
  if (a.size() == 0) return run(a, indices, values);
  int64_t n = a.shape(axis);
  auto v = normalized(indices, n, s);
  auto valid = mx::logical_and(mx::greater_equal(v, mx::array(int64_t{0}), s),
                               mx::less(v, mx::array(n), s), s);
  if (add) {
    auto vals = mx::astype(values, a.dtype(), s);
    return run(a, mx::where(valid, v, mx::array(int64_t{0}), s),
               mx::where(valid, vals, mx::array(0, a.dtype()), s));
  }
  auto padded = mx::pad(a, std::vector<int>{axis}, mx::Shape{0}, mx::Shape{1}, mx::array(0, a.dtype()),
                        "constant", s);
  auto r = run(padded, mx::where(valid, v, mx::array(n), s), values);
  mx::Shape start(r.ndim(), 0);
  mx::Shape stop = r.shape();
  stop[axis] = static_cast<int>(n);
  return mx::slice(r, start, stop, s);
}

// A gather along one axis of n elements that read nothing when it has no elements: the
// result must be empty then.
mx::array empty_axis_only(mx::array r, const char* op) {
  if (r.size() != 0)
    throw std::invalid_argument(op_name(op) + "cannot take elements from an axis of size 0");
  return r;
}

}  // namespace

namespace emily {

mx::array matrix_indices(const mx::array& idx, int64_t batch, const char* op, mx::Stream s) {
  check_index_dtype(idx, op);
  if (batch == 0) {
    if (idx.size() != 0)
      throw std::invalid_argument(op_name(op) + "cannot take matrices from an empty batch");
    return idx;
  }
  // MLX reads the values as uint32: a batch past that could not be addressed.
  if (batch > int64_t{std::numeric_limits<uint32_t>::max()})
    throw std::invalid_argument(op_name(op) + "a batch of " + std::to_string(batch) +
                                " matrices is more than 32-bit indices can address");
  if (!mx::issubdtype(idx.dtype(), mx::signedinteger)) return clamp_in_dtype(idx, 0, batch - 1, s);
  return mx::clip(normalized(idx, batch, s), mx::array(int64_t{0}), mx::array(batch - 1), s);
}

// take, take_axis, take_along_axis along `ax` of `a` (index dtype and axis checked):
// indices clamped into range; an empty axis admits only empty index arrays.
template <class Take>
mx::array take_clamped(Take take, const mx::array& a, const mx::array& idx, int ax, const char* op,
                       mx::Stream s) {
  int64_t n = a.shape(ax);
  if (n == 0) return empty_axis_only(take(a, idx, ax, s), op);
  return take(a, clamp_single(idx, n, s), ax, s);
}

constexpr auto take_op = [](const mx::array& a, const mx::array& i, int ax, mx::Stream s) {
  return mx::take(a, i, ax, s);
};
constexpr auto take_along_op = [](const mx::array& a, const mx::array& i, int ax, mx::Stream s) {
  return mx::take_along_axis(a, i, ax, s);
};

}  // namespace emily

extern "C" {

// take(a, indices): indices into the flattened array.
EMILY_API int emily_take(emily_stream s, const emily_array* a, const emily_array* indices,
                         emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    check_index_dtype(indices->a, "take");
    put(out, take_clamped(take_op, mx::flatten(a->a, st), indices->a, 0, "take", st));
  })
}

EMILY_API int emily_take_axis(emily_stream s, const emily_array* a, const emily_array* indices,
                              int64_t axis, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    check_index_dtype(indices->a, "take_axis");
    int ax = norm_axis(axis, a->a.ndim(), "take_axis");
    put(out, take_clamped(take_op, a->a, indices->a, ax, "take_axis", st));
  })
}

EMILY_API int emily_take_along_axis(emily_stream s, const emily_array* a,
                                    const emily_array* indices, int64_t axis,
                                    emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    check_index_dtype(indices->a, "take_along_axis");
    int ax = norm_axis(axis, a->a.ndim(), "take_along_axis");
    put(out, take_clamped(take_along_op, a->a, indices->a, ax, "take_along_axis", st));
  })
}

EMILY_API int emily_put_along_axis(emily_stream s, const emily_array* a,
                                   const emily_array* indices, const emily_array* values,
                                   int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, scatter_axis_safe(false, "put_along_axis", a->a, indices->a, values->a, axis,
                                         stream(s))))
}

EMILY_API int emily_scatter_add_axis(emily_stream s, const emily_array* a,
                                     const emily_array* indices, const emily_array* values,
                                     int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, scatter_axis_safe(true, "scatter_add_axis", a->a, indices->a, values->a, axis,
                                         stream(s))))
}

EMILY_API int emily_gather(emily_stream s, const emily_array* a, emily_arrays indices,
                           emily_ints axes, emily_ints slice_sizes, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    const auto& src = a->a;
    auto idx = index_arrays(indices, src.ndim(), "gather", st);
    auto ax = index_axes(axes, idx.size(), src.ndim(), "gather");
    auto sizes = shape(slice_sizes);
    if (sizes.size() != src.ndim())
      throw std::invalid_argument("[gather] needs one slice size per axis of the array (" +
                                  std::to_string(src.ndim()) + "), got " + std::to_string(sizes.size()));
    for (size_t d = 0; d < sizes.size(); d++)
      if (sizes[d] < 0 || sizes[d] > src.shape(d))
        throw std::invalid_argument("[gather] slice size " + std::to_string(sizes[d]) + " along axis " +
                                    std::to_string(d) + " is outside [0, " + std::to_string(src.shape(d)) +
                                    "]");
    for (size_t k = 0; k < idx.size(); k++)
      idx[k] = clamp_window(idx[k], src.shape(ax[k]), sizes[ax[k]], st);
    put(out, mx::gather(src, idx, ax, std::move(sizes), st));
  })
}

#define EMILY_SCATTER_OPS(X) \
  X(scatter, 0) X(scatter_add, 1) X(scatter_prod, 2) X(scatter_max, 3) X(scatter_min, 4)
#define X(name, kind)                                                                          \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_arrays indices,       \
                             const emily_array* updates, emily_ints axes, emily_array** out) { \
    EMILY_GUARD(put(out, scatter_safe(kind, #name, a->a, indices, updates->a, axes, stream(s)))) \
  }
EMILY_SCATTER_OPS(X)
#undef X
}
