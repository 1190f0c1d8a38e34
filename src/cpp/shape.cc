// Shape and layout ops: reshape, transpose, broadcast, pad, concatenate, slices, select,
// clip, as_strided. Declared in src/ops/shape.ops.
#include <algorithm>
#include <optional>

#include "shim.hpp"

using namespace emily;

namespace {

std::optional<mx::array> optional(emily_arrays v, const char* what) {
  if (v.len > 1) throw std::invalid_argument(std::string(what) + " takes at most one array");
  if (v.len == 0) return std::nullopt;
  return v.ptr[0]->a;
}

const char* pad_mode(emily_pad_mode mode) {
  switch (mode) {
    case EMILY_PAD_MODE_CONSTANT: return "constant";
    case EMILY_PAD_MODE_EDGE: return "edge";
  }
  throw std::invalid_argument("[pad] unknown mode " + std::to_string(static_cast<int>(mode)));
}

int normalize_axis(int64_t axis, size_t ndim, const char* op) {
  int64_t n = static_cast<int64_t>(ndim);
  int64_t ax = axis < 0 ? axis + n : axis;
  if (ax < 0 || ax >= n)
    throw std::invalid_argument(std::string(op) + " axis " + std::to_string(axis) +
                                " is out of range for an array with " + std::to_string(ndim) + " dimensions");
  return static_cast<int>(ax);
}

std::vector<int> normalize_axes(emily_ints axes, size_t ndim, const char* op) {
  return axes_of(axes, ndim, op);
}

// Start indices of a dynamic slice, clamped so that a window of `extent[axis]` elements
// fits in `shape` (MLX 0.32 reads and writes out of bounds otherwise). Returns int32
// indices, one per axis.
mx::array clamp_starts(const mx::array& start, const std::vector<int>& axes, const mx::Shape& shape,
                       const std::vector<int64_t>& extent, const char* op, mx::Stream st) {
  if (!mx::issubdtype(start.dtype(), mx::integer))
    throw std::invalid_argument(std::string(op) + " start indices must be integers");
  if (start.ndim() > 1 || start.size() != axes.size())
    throw std::invalid_argument(std::string(op) + " needs one start index per axis (" +
                                std::to_string(axes.size()) + "), as a 0-d or 1-d array");
  std::vector<int64_t> hi;
  for (int ax : axes) hi.push_back(static_cast<int64_t>(shape[ax]) - extent[ax]);
  auto hi_a = mx::array(hi.begin(), mx::Shape{static_cast<int>(hi.size())}, mx::int64);
  auto s64 = mx::reshape(mx::astype(start, mx::int64, st), {static_cast<int>(axes.size())}, st);
  auto clamped = mx::minimum(mx::maximum(s64, mx::array(int64_t{0}), st), hi_a, st);
  return mx::astype(clamped, mx::int32, st);
}

// Checked static slice arguments: one entry per axis, non-zero strides; start and stop
// clamped to [-n - 1, n] (same result, and MLX's int arithmetic cannot overflow).
void check_slice(const mx::Shape& shp, mx::Shape& start, mx::Shape& stop, mx::Shape& strides, const char* op) {
  if (start.size() != shp.size() || stop.size() != shp.size() || strides.size() != shp.size())
    throw std::invalid_argument(std::string(op) + " needs one start, stop and stride per axis (" +
                                std::to_string(shp.size()) + ")");
  for (size_t i = 0; i < shp.size(); i++) {
    int64_t n = shp[i];
    if (strides[i] == 0) throw std::invalid_argument(std::string(op) + " strides must not be zero");
    auto clamp = [n](int64_t v) { return static_cast<int>(std::min(std::max(v, -n - 1), n)); };
    start[i] = clamp(start[i]);
    stop[i] = clamp(stop[i]);
    int64_t lim = std::max<int64_t>(n, 1);
    strides[i] = static_cast<int>(std::min(std::max<int64_t>(strides[i], -lim), lim));
  }
}

// An int32 product, refused when it overflows.
int checked_mul(int64_t a, int64_t b, const char* op) {
  int64_t p = a * b;  // both within int32: no int64 overflow
  if (p > std::numeric_limits<int>::max())
    throw std::invalid_argument(std::string(op) + " result dimension " + std::to_string(p) +
                                " is outside the 32-bit range MLX uses");
  return static_cast<int>(p);
}

// A static slice update combining with `f` (mx::slice_update_add, ...), arguments checked.
// On a GPU stream it is composed as slice -> `g` (add, multiply, ...) -> slice_update: a
// window's elements are distinct, so no atomics are needed, and MLX's CUDA kernel for the
// combining update hung on some types on the H100.
template <typename F, typename G>
mx::array combine_slice(F f, G g, const char* op, const mx::array& src, const mx::array& update,
                        emily_ints start, emily_ints stop, emily_ints strides, mx::Stream st) {
  auto b = shape(start);
  auto e = shape(stop);
  auto str = shape(strides);
  check_slice(src.shape(), b, e, str, op);
  if (st.device != mx::Device::gpu) return f(src, update, std::move(b), std::move(e), std::move(str), st);
  auto window = mx::slice(src, b, e, str, st);
  auto combined = g(window, mx::astype(update, src.dtype(), st), st);
  return mx::slice_update(src, mx::astype(combined, src.dtype(), st), std::move(b), std::move(e), std::move(str), st);
}

// A target shape for reshape/unflatten: dimensions >= 0, at most one -1 (inferred), and
// when there is one the others multiply to a non-zero size (MLX divides by it, in size_t:
// a product that wraps to 0 counts too; no array has 2^62 elements).
mx::Shape target_shape(emily_ints v, const char* op) {
  auto shp = shape(v);
  int infer = 0;
  bool zero = false;
  uint64_t known = 1;
  for (auto d : shp) {
    if (d < -1)
      throw std::invalid_argument(std::string(op) + " dimension " + std::to_string(d) +
                                  " is negative (only one -1, inferred, is allowed)");
    if (d == -1) {
      if (++infer > 1) throw std::invalid_argument(std::string(op) + " can infer one dimension (-1) at most");
    } else if (d == 0) {
      zero = true;
    } else if (__builtin_mul_overflow(known, static_cast<uint64_t>(d), &known) || known > (uint64_t{1} << 62)) {
      throw std::invalid_argument(std::string(op) + " shape has more than 2^62 elements");
    }
  }
  if (infer == 1 && zero)
    throw std::invalid_argument(std::string(op) + " cannot infer a -1 dimension beside a dimension of size 0");
  return shp;
}

}  // namespace

extern "C" {

EMILY_API int emily_reshape(emily_stream s, const emily_array* a, emily_ints shp, emily_array** out) {
  EMILY_GUARD(put(out, mx::reshape(a->a, target_shape(shp, "[reshape]"), stream(s))))
}

EMILY_API int emily_transpose(emily_stream s, const emily_array* a, emily_ints axes, emily_array** out) {
  EMILY_GUARD(put(out, mx::transpose(a->a, ints(axes), stream(s))))
}

EMILY_API int emily_squeeze(emily_stream s, const emily_array* a, emily_ints axes, emily_array** out) {
  EMILY_GUARD(put(out, mx::squeeze(a->a, ints(axes), stream(s))))
}

EMILY_API int emily_expand_dims(emily_stream s, const emily_array* a, emily_ints axes, emily_array** out) {
  EMILY_GUARD(put(out, mx::expand_dims(a->a, ints(axes), stream(s))))
}

EMILY_API int emily_broadcast_to(emily_stream s, const emily_array* a, emily_ints shp, emily_array** out) {
  EMILY_GUARD(put(out, mx::broadcast_to(a->a, shape(shp), stream(s))))
}

EMILY_API int emily_pad(emily_stream s, const emily_array* a, emily_ints axes, emily_ints low,
                        emily_ints high, const emily_array* value, emily_pad_mode mode, emily_array** out) {
  EMILY_GUARD({
    // MLX reads the first element of `value` whatever its shape (and reads out of bounds
    // when it has none): insist on one element.
    if (value->a.size() != 1) throw std::invalid_argument("[pad] the pad value must have exactly one element");
    auto v = value->a.ndim() == 0 ? value->a : mx::reshape(value->a, {}, stream(s));
    // MLX indexes the shape by each axis unchecked.
    auto ax = normalize_axes(axes, a->a.ndim(), "[pad]");
    put(out, mx::pad(a->a, ax, shape(low), shape(high), v, pad_mode(mode), stream(s)));
  })
}

EMILY_API int emily_concatenate(emily_stream s, emily_arrays arrs, int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, mx::concatenate(arrays(arrs), to_int(axis, "axis"), stream(s))))
}

EMILY_API int emily_stack(emily_stream s, emily_arrays arrs, int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, mx::stack(arrays(arrs), to_int(axis, "axis"), stream(s))))
}

EMILY_API int emily_slice(emily_stream s, const emily_array* a, emily_ints start, emily_ints stop,
                          emily_ints strides, emily_array** out) {
  EMILY_GUARD({
    auto b = shape(start);
    auto e = shape(stop);
    auto st = shape(strides);
    check_slice(a->a.shape(), b, e, st, "[slice]");
    put(out, mx::slice(a->a, std::move(b), std::move(e), std::move(st), stream(s)));
  })
}

// Start indices are clamped so the window fits (as in XLA and Nx).
EMILY_API int emily_slice_dynamic(emily_stream s, const emily_array* a, const emily_array* start,
                                  emily_ints axes, emily_ints sizes, emily_array** out) {
  EMILY_GUARD({
    auto ax = normalize_axes(axes, a->a.ndim(), "[slice_dynamic]");
    auto size = shape(sizes);
    if (size.size() != a->a.ndim())
      throw std::invalid_argument("[slice_dynamic] needs one size per axis of the array");
    std::vector<int64_t> extent;
    for (size_t i = 0; i < size.size(); i++) {
      if (size[i] < 0 || size[i] > a->a.shape(i))
        throw std::invalid_argument("[slice_dynamic] size " + std::to_string(size[i]) + " does not fit axis " +
                                    std::to_string(i) + " of size " + std::to_string(a->a.shape(i)));
      extent.push_back(size[i]);
    }
    auto st = stream(s);
    auto b = clamp_starts(start->a, ax, a->a.shape(), extent, "[slice_dynamic]", st);
    put(out, mx::slice(a->a, b, ax, std::move(size), st));
  })
}

EMILY_API int emily_slice_update(emily_stream s, const emily_array* src, const emily_array* update,
                                 emily_ints start, emily_ints stop, emily_ints strides, emily_array** out) {
  EMILY_GUARD({
    auto b = shape(start);
    auto e = shape(stop);
    auto st = shape(strides);
    check_slice(src->a.shape(), b, e, st, "[slice_update]");
    put(out, mx::slice_update(src->a, update->a, std::move(b), std::move(e), std::move(st), stream(s)));
  })
}

// Start indices are clamped so the update fits (as in XLA and Nx). `update` has at most
// as many dimensions as `src` (missing leading ones are added).
EMILY_API int emily_slice_update_dynamic(emily_stream s, const emily_array* src, const emily_array* update,
                                         const emily_array* start, emily_ints axes, emily_array** out) {
  EMILY_GUARD({
    const auto& a = src->a;
    const auto& u = update->a;
    if (u.ndim() > a.ndim())
      throw std::invalid_argument("[slice_update_dynamic] update has more dimensions than the array");
    auto ax = normalize_axes(axes, a.ndim(), "[slice_update_dynamic]");
    size_t diff = a.ndim() - u.ndim();
    std::vector<int64_t> extent(a.ndim(), 1);
    for (size_t d = diff; d < a.ndim(); d++) {
      if (u.shape(d - diff) > a.shape(d) && u.shape(d - diff) != 1)
        throw std::invalid_argument("[slice_update_dynamic] update of shape does not fit the array");
      extent[d] = std::min(u.shape(d - diff), a.shape(d));
    }
    auto st = stream(s);
    auto b = clamp_starts(start->a, ax, a.shape(), extent, "[slice_update_dynamic]", st);
    put(out, mx::slice_update(a, u, b, ax, st));
  })
}

#define X(name, elementwise)                                                                        \
  EMILY_API int emily_##name(emily_stream s, const emily_array* src, const emily_array* update,     \
                             emily_ints start, emily_ints stop, emily_ints strides,                 \
                             emily_array** out) {                                                   \
    using Fn = mx::array (*)(const mx::array&, const mx::array&, mx::Shape, mx::Shape, mx::Shape,   \
                             mx::StreamOrDevice);                                                   \
    using Gn = mx::array (*)(const mx::array&, const mx::array&, mx::StreamOrDevice);               \
    EMILY_GUARD(put(out, combine_slice(static_cast<Fn>(&mx::name), static_cast<Gn>(&mx::elementwise), \
                                       "[" #name "]", src->a, update->a, start, stop, strides,      \
                                       stream(s))))                                                 \
  }
X(slice_update_add, add) X(slice_update_prod, multiply) X(slice_update_max, maximum)
X(slice_update_min, minimum)
#undef X

EMILY_API int emily_flip(emily_stream s, const emily_array* a, emily_ints axes, emily_array** out) {
  EMILY_GUARD(put(out, mx::flip(a->a, ints(axes), stream(s))))
}

EMILY_API int emily_tile(emily_stream s, const emily_array* a, emily_ints reps, emily_array** out) {
  EMILY_GUARD({
    auto r = ints(reps);
    auto shp = a->a.shape();
    // MLX multiplies dimensions in int: check each product first (aligned from the right).
    for (size_t i = 0; i < r.size(); i++) {
      if (r[i] < 0) throw std::invalid_argument("[tile] repetitions must not be negative");
      int64_t j = static_cast<int64_t>(shp.size()) - static_cast<int64_t>(r.size()) + static_cast<int64_t>(i);
      checked_mul(r[i], j >= 0 ? shp[j] : 1, "[tile]");
    }
    put(out, mx::tile(a->a, std::move(r), stream(s)));
  })
}

EMILY_API int emily_repeat(emily_stream s, const emily_array* a, int64_t repeats, int64_t axis,
                           emily_array** out) {
  EMILY_GUARD({
    int ax = normalize_axis(axis, a->a.ndim(), "[repeat]");
    int r = to_int(repeats, "[repeat] repeats");
    if (r < 0) throw std::invalid_argument("[repeat] repeats must not be negative");
    checked_mul(r, a->a.shape(ax), "[repeat]");
    put(out, mx::repeat(a->a, r, ax, stream(s)));
  })
}

EMILY_API int emily_swapaxes(emily_stream s, const emily_array* a, int64_t axis1, int64_t axis2,
                             emily_array** out) {
  EMILY_GUARD(put(out, mx::swapaxes(a->a, to_int(axis1, "axis"), to_int(axis2, "axis"), stream(s))))
}

EMILY_API int emily_moveaxis(emily_stream s, const emily_array* a, int64_t source, int64_t destination,
                             emily_array** out) {
  EMILY_GUARD(put(out, mx::moveaxis(a->a, to_int(source, "axis"), to_int(destination, "axis"), stream(s))))
}

EMILY_API int emily_select(emily_stream s, const emily_array* cond, const emily_array* x,
                           const emily_array* y, emily_array** out) {
  EMILY_GUARD(put(out, mx::where(cond->a, x->a, y->a, stream(s))))
}

EMILY_API int emily_clip(emily_stream s, const emily_array* a, emily_arrays lo, emily_arrays hi,
                         emily_array** out) {
  EMILY_GUARD(put(out, mx::clip(a->a, optional(lo, "[clip] min"), optional(hi, "[clip] max"), stream(s))))
}

EMILY_API int emily_flatten(emily_stream s, const emily_array* a, int64_t start_axis, int64_t end_axis,
                            emily_array** out) {
  EMILY_GUARD(put(out, mx::flatten(a->a, to_int(start_axis, "axis"), to_int(end_axis, "axis"), stream(s))))
}

EMILY_API int emily_unflatten(emily_stream s, const emily_array* a, int64_t axis, emily_ints shp,
                              emily_array** out) {
  EMILY_GUARD({
    normalize_axis(axis, a->a.ndim(), "[unflatten]");
    put(out, mx::unflatten(a->a, to_int(axis, "axis"), target_shape(shp, "[unflatten]"), stream(s)));
  })
}

// ---- multi-output: any number of outputs ----

// split(a, parts, axis): `parts` equal parts along `axis` (whose size must be a multiple of
// `parts`; an axis of size 0 splits into `parts` empty arrays).
EMILY_API int emily_split(emily_stream s, const emily_array* a, int64_t parts, int64_t axis,
                          emily_outs outs) {
  EMILY_GUARD({
    int ax = normalize_axis(axis, a->a.ndim(), "[split]");
    int64_t n = a->a.shape(ax);
    if (parts < 1)
      throw std::invalid_argument("[split] the number of parts must be at least 1, got " +
                                  std::to_string(parts));
    if (n % parts != 0)
      throw std::invalid_argument("[split] an axis of " + std::to_string(n) +
                                  " elements does not split into " + std::to_string(parts) +
                                  " equal parts");
    check_outputs(static_cast<uint64_t>(parts), "split");
    put_all(outs, mx::split(a->a, to_int(parts, "[split] parts"), ax, stream(s)));
  })
}

// split_indices(a, indices, axis): the parts between the boundaries `indices` along `axis`
// (len(indices) + 1 parts), numpy's array_split with indices: a negative boundary counts
// from the end, boundaries past either end are clamped, a boundary below the one before it
// gives an empty part.
EMILY_API int emily_split_indices(emily_stream s, const emily_array* a, emily_ints indices,
                                  int64_t axis, emily_outs outs) {
  EMILY_GUARD({
    int ax = normalize_axis(axis, a->a.ndim(), "[split_indices]");
    check_outputs(static_cast<uint64_t>(indices.len) + 1, "split_indices");
    int64_t n = a->a.shape(ax);
    mx::Shape bounds;
    bounds.reserve(indices.len);
    // 32-bit like every index, then clamped to [-n, n] (the same parts; MLX's int arithmetic
    // cannot overflow).
    for (size_t i = 0; i < indices.len; i++)
      bounds.push_back(static_cast<int>(
          std::clamp<int64_t>(to_int(indices.ptr[i], "[split_indices] boundary"), -n, n)));
    put_all(outs, mx::split(a->a, bounds, ax, stream(s)));
  })
}

// unstack(a, axis): the shape[axis] slices along `axis`, each without that axis (none for an
// axis of size 0).
EMILY_API int emily_unstack(emily_stream s, const emily_array* a, int64_t axis, emily_outs outs) {
  EMILY_GUARD({
    int ax = normalize_axis(axis, a->a.ndim(), "[unstack]");
    check_outputs(static_cast<uint64_t>(a->a.shape(ax)), "unstack");
    put_all(outs, mx::unstack(a->a, ax, stream(s)));
  })
}

EMILY_API int emily_as_strided(emily_stream s, const emily_array* a, emily_ints shp, emily_ints strides,
                               int64_t offset, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    auto sh = shape(shp);
    if (strides.len != sh.size())
      throw std::invalid_argument("[as_strided] needs one stride per dimension (" + std::to_string(sh.size()) +
                                  "), got " + std::to_string(strides.len));
    if (offset < 0) throw std::invalid_argument("[as_strided] offset must be non-negative");
    for (size_t i = 0; i < strides.len; i++)
      if (strides.ptr[i] > INT32_MAX || strides.ptr[i] < INT32_MIN)
        throw std::invalid_argument("[as_strided] stride " + std::to_string(strides.ptr[i]) +
                                    " reaches past any array (strides are 32-bit)");
    mx::Strides str(strides.ptr, strides.ptr + strides.len);
    bool empty = false;
    int64_t last = offset;
    for (size_t i = 0; i < sh.size(); i++) {
      if (sh[i] < 0) throw std::invalid_argument("[as_strided] negative dimension");
      if (str[i] < 0) throw std::invalid_argument("[as_strided] strides must be non-negative");
      // (a stride along a dimension of size 1 is never applied: any value is fine)
      if (sh[i] > 1 && str[i] > static_cast<int64_t>(a->a.size()))
        throw std::invalid_argument("[as_strided] stride " + std::to_string(str[i]) +
                                    " reaches past the array (" + std::to_string(a->a.size()) +
                                    " elements)");
      if (sh[i] == 0) empty = true;
      else {
        int64_t step = 0;
        if (__builtin_mul_overflow(static_cast<int64_t>(sh[i] - 1), str[i], &step) ||
            __builtin_add_overflow(last, step, &last))
          throw std::invalid_argument("[as_strided] the view reaches past any array");
      }
    }
    int64_t size = static_cast<int64_t>(a->a.size());
    if (!empty && last >= size)
      throw std::invalid_argument("[as_strided] the view reaches element " + std::to_string(last) +
                                  " of an array of " + std::to_string(size));
    auto c = mx::contiguous(a->a, false, st);
    put(out, mx::as_strided(c, std::move(sh), std::move(str), static_cast<size_t>(offset), st));
  })
}

}  // extern "C"
