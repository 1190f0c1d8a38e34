// Array creation and dtype conversion: constants, ranges, eye/tri, astype/view/contiguous.
// Declared in src/ops/creation.ops.
#include <cmath>
#include <complex>
#include <functional>

#include "shim.hpp"

using namespace emily;

namespace {

// A host-side scalar of `dtype` (no graph node: the array is already available).
mx::array scalar_of(double v, mx::Dtype dt) {
  if (mx::issubdtype(dt, mx::integer) || dt == mx::bool_) {
    if (!std::isfinite(v))
      throw std::invalid_argument("cannot make an integer or boolean value from " + std::to_string(v));
  }
  if (dt == mx::complex64) return mx::array(std::complex<float>(static_cast<float>(v), 0.0f));
  return mx::array(v, dt);
}

mx::array scalar_int_of(int64_t v, mx::Dtype dt) {
  if (dt == mx::complex64) return mx::array(std::complex<float>(static_cast<float>(v), 0.0f));
  // uint64 takes the two's complement bits: -1 is 2^64 - 1.
  return mx::array(v, dt);
}

// For a real dtype, the real part (as a complex-to-real cast does).
mx::array scalar_complex_of(double re, double im, mx::Dtype dt) {
  if (dt != mx::complex64) return scalar_of(re, dt);
  return mx::array(std::complex<float>(static_cast<float>(re), static_cast<float>(im)));
}

// MLX builds eye and tri from aranges of n and m elements: with n or m zero, the other
// could be billions long for an empty result. Empty results are made directly.
mx::array empty_or(int n, int m, mx::Dtype dt, mx::Stream st, const std::function<mx::array()>& f) {
  if (n < 0 || m < 0) throw std::invalid_argument("N and M must not be negative");
  if (n == 0 || m == 0) return mx::zeros({n, m}, dt, st);
  // The result's size first: MLX's aranges are built before the result is checked.
  check_size(mx::zeros({n, m}, dt, st));
  return f();
}

// A diagonal offset for n rows and m columns: offsets past either corner select the same
// (all or no) elements, so k is clamped into [-n, m].
int diagonal(int64_t k, int64_t n, int64_t m) {
  return static_cast<int>(std::min(std::max(k, -std::max<int64_t>(n, 0)), std::max<int64_t>(m, 0)));
}

// MLX's tri computes arange(-k, m - k) in int (and triu passes k - 1): refused where that
// would overflow.
int tri_diagonal(int64_t k, int64_t n, int64_t m, const char* op) {
  int kk = diagonal(k, n, m);
  if (m - kk + 1 > std::numeric_limits<int>::max() || -static_cast<int64_t>(kk) + 1 > std::numeric_limits<int>::max())
    throw std::invalid_argument(std::string(op) + " " + std::to_string(n) + " x " + std::to_string(m) +
                                " with diagonal " + std::to_string(k) + " is outside the 32-bit range MLX uses");
  return kk;
}

mx::array triangle(const mx::array& a, int64_t k, bool upper, mx::Stream st) {
  const char* op = upper ? "[triu]" : "[tril]";
  if (a.ndim() < 2) throw std::invalid_argument(std::string(op) + " the array needs at least 2 dimensions");
  int kk = tri_diagonal(k, a.shape(-2), a.shape(-1), op);
  return upper ? mx::triu(a, kk, st) : mx::tril(a, kk, st);
}

}  // namespace

extern "C" {

EMILY_API int emily_full(emily_stream s, emily_ints shp, double value, int32_t dtype, emily_array** out) {
  EMILY_GUARD({
    auto dt = to_dtype(dtype);
    put(out, mx::full(shape(shp), scalar_of(value, dt), dt, stream(s)));
  })
}

EMILY_API int emily_full_int(emily_stream s, emily_ints shp, int64_t value, int32_t dtype, emily_array** out) {
  EMILY_GUARD({
    auto dt = to_dtype(dtype);
    put(out, mx::full(shape(shp), scalar_int_of(value, dt), dt, stream(s)));
  })
}

EMILY_API int emily_full_complex(emily_stream s, emily_ints shp, double re, double im, int32_t dtype,
                                 emily_array** out) {
  EMILY_GUARD({
    auto dt = to_dtype(dtype);
    put(out, mx::full(shape(shp), scalar_complex_of(re, im, dt), dt, stream(s)));
  })
}

EMILY_API int emily_scalar(emily_stream s, double value, int32_t dtype, emily_array** out) {
  EMILY_GUARD(put(out, scalar_of(value, to_dtype(dtype))))
}

EMILY_API int emily_scalar_int(emily_stream s, int64_t value, int32_t dtype, emily_array** out) {
  EMILY_GUARD(put(out, scalar_int_of(value, to_dtype(dtype))))
}

EMILY_API int emily_scalar_complex(emily_stream s, double re, double im, int32_t dtype, emily_array** out) {
  EMILY_GUARD(put(out, scalar_complex_of(re, im, to_dtype(dtype))))
}

EMILY_API int emily_zeros(emily_stream s, emily_ints shp, int32_t dtype, emily_array** out) {
  EMILY_GUARD(put(out, mx::zeros(shape(shp), to_dtype(dtype), stream(s))))
}

EMILY_API int emily_ones(emily_stream s, emily_ints shp, int32_t dtype, emily_array** out) {
  EMILY_GUARD(put(out, mx::ones(shape(shp), to_dtype(dtype), stream(s))))
}

EMILY_API int emily_zeros_like(emily_stream s, const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::zeros_like(a->a, stream(s))))
}

EMILY_API int emily_ones_like(emily_stream s, const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::ones_like(a->a, stream(s))))
}

EMILY_API int emily_arange(emily_stream s, double start, double stop, double step, int32_t dtype,
                           emily_array** out) {
  EMILY_GUARD({
    if (!std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
      throw std::invalid_argument("[arange] start, stop and step must be finite");
    if (step == 0.0) throw std::invalid_argument("[arange] step must not be zero");
    double n = std::ceil((stop - start) / step);
    if (n > static_cast<double>(std::numeric_limits<int>::max()))
      throw std::invalid_argument("[arange] more than 2^31 - 1 elements");
    put(out, mx::arange(start, stop, step, to_dtype(dtype), stream(s)));
  })
}

EMILY_API int emily_linspace(emily_stream s, double start, double stop, int64_t num, bool endpoint,
                             int32_t dtype, emily_array** out) {
  EMILY_GUARD({
    if (!std::isfinite(start) || !std::isfinite(stop))
      throw std::invalid_argument("[linspace] start and stop must be finite");
    put(out, mx::linspace(start, stop, to_int(num, "[linspace] num"), endpoint, to_dtype(dtype), stream(s)));
  })
}

EMILY_API int emily_eye(emily_stream s, int64_t n, int64_t m, int64_t k, int32_t dtype, emily_array** out) {
  EMILY_GUARD({
    int n_ = to_int(n, "[eye] n");
    int m_ = to_int(m, "[eye] m");
    int k_ = diagonal(k, n_, m_);
    auto dt = to_dtype(dtype);
    auto st = stream(s);
    put(out, empty_or(n_, m_, dt, st, [&] { return mx::eye(n_, m_, k_, dt, st); }));
  })
}

EMILY_API int emily_identity(emily_stream s, int64_t n, int32_t dtype, emily_array** out) {
  EMILY_GUARD(put(out, mx::identity(to_int(n, "[identity] n"), to_dtype(dtype), stream(s))))
}

EMILY_API int emily_tri(emily_stream s, int64_t n, int64_t m, int64_t k, int32_t dtype, emily_array** out) {
  EMILY_GUARD({
    int n_ = to_int(n, "[tri] n");
    int m_ = to_int(m, "[tri] m");
    if (n_ < 0 || m_ < 0) throw std::invalid_argument("[tri] n and m must not be negative");
    auto dt = to_dtype(dtype);
    auto st = stream(s);
    put(out, empty_or(n_, m_, dt, st, [&] { return mx::tri(n_, m_, tri_diagonal(k, n_, m_, "[tri]"), dt, st); }));
  })
}

EMILY_API int emily_tril(emily_stream s, const emily_array* a, int64_t k, emily_array** out) {
  EMILY_GUARD(put(out, triangle(a->a, k, false, stream(s))))
}

EMILY_API int emily_triu(emily_stream s, const emily_array* a, int64_t k, emily_array** out) {
  EMILY_GUARD(put(out, triangle(a->a, k, true, stream(s))))
}

EMILY_API int emily_astype(emily_stream s, const emily_array* a, int32_t dtype, emily_array** out) {
  EMILY_GUARD(put(out, mx::astype(a->a, to_dtype(dtype), stream(s))))
}

EMILY_API int emily_view(emily_stream s, const emily_array* a, int32_t dtype, emily_array** out) {
  EMILY_GUARD(put(out, mx::view(a->a, to_dtype(dtype), stream(s))))
}

EMILY_API int emily_contiguous(emily_stream s, const emily_array* a, bool allow_col_major, emily_array** out) {
  EMILY_GUARD(put(out, mx::contiguous(a->a, allow_col_major, stream(s))))
}

}  // extern "C"
