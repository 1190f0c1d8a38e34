// Matrix products and mlx::core::linalg, declared in src/ops/linalg.ops. MLX has CPU
// kernels only for the factorizations (`[cpu]` there): the NIFs build those on the worker's
// CPU stream.
#include <cmath>
#include <complex>
#include <limits>

#include "shim.hpp"

using namespace emily;

namespace {

std::optional<std::vector<int>> opt_axes(emily_ints v) {
  if (v.len == 0) return std::nullopt;
  return ints(v);
}

const char* uplo(bool upper) { return upper ? "U" : "L"; }

// MLX's factorizations divide by the matrix size (an empty matrix or batch: SIGFPE) and
// hand LAPACK zero leading dimensions: empty inputs are refused.
const mx::array& nonempty(const mx::array& a, const char* op) {
  if (a.size() == 0) {
    std::string shp;
    for (auto d : a.shape()) shp += "[" + std::to_string(d) + "]";
    throw std::invalid_argument(std::string("[") + op + "] needs a non-empty array, got shape " + shp);
  }
  return a;
}

// linalg::cross builds part of its graph on the calling thread's default stream, which the
// worker cannot evaluate ("There is no Stream(cpu, n) in current thread"): the same
// computation with every node on `s`.
mx::array cross(const mx::array& a0, const mx::array& b0, int axis, mx::Stream s) {
  auto ab = mx::broadcast_arrays({a0, b0}, s);
  int nd = static_cast<int>(ab[0].ndim());
  int ax = axis < 0 ? axis + nd : axis;
  if (ax < 0 || ax >= nd)
    throw std::invalid_argument("[cross] axis " + std::to_string(axis) + " is out of bounds for " +
                                std::to_string(nd) + " dimensions");
  auto three = [&](const mx::array& x) {
    int n = x.shape(ax);
    if (n == 3) return x;
    if (n != 2)
      throw std::invalid_argument("[cross] the axis must have size 2 or 3, got " +
                                  std::to_string(n));
    return mx::pad(x, std::vector<int>{ax}, mx::Shape{0}, mx::Shape{1}, mx::array(0, x.dtype()),
                   "constant", s);
  };
  auto a = mx::split(three(ab[0]), 3, ax, s);
  auto b = mx::split(three(ab[1]), 3, ax, s);
  auto d = [&](int i, int j) {
    return mx::subtract(mx::multiply(a[i], b[j], s), mx::multiply(a[j], b[i], s), s);
  };
  return mx::concatenate({d(1, 2), d(2, 0), d(0, 1)}, ax, s);
}

// gather_mm as take + matmul: the matrices each index pair names, gathered, then multiplied
// (MLX's CPU GatherMM kernel handles float32 only). `lhs`/`rhs` already made safe.
mx::array gather_mm_by_take(mx::array a, mx::array b, const std::optional<mx::array>& lhs,
                            const std::optional<mx::array>& rhs, mx::Stream s) {
  bool a_vec = a.ndim() == 1, b_vec = b.ndim() == 1;
  if (a_vec) a = mx::expand_dims(a, 0, s);
  if (b_vec) b = mx::expand_dims(b, 1, s);
  auto matrices = [&](const mx::array& x) {
    int n = to_int(batch_count(x), "[gather_mm] batch size");
    return mx::reshape(x, {n, x.shape(-2), x.shape(-1)}, s);
  };
  auto indices = [&](const std::optional<mx::array>& idx, const mx::array& x) {
    if (idx) return *idx;
    mx::Shape batch(x.shape().begin(), x.shape().end() - 2);
    return mx::reshape(mx::arange(to_int(batch_count(x)), mx::int32, s), batch, s);
  };
  auto ix = mx::broadcast_arrays({indices(lhs, a), indices(rhs, b)}, s);
  auto dt = mx::result_type(a, b);
  auto ga = mx::take(matrices(mx::astype(a, dt, s)), ix[0], 0, s);
  auto gb = mx::take(matrices(mx::astype(b, dt, s)), ix[1], 0, s);
  auto r = mx::matmul(ga, gb, s);
  std::vector<int> drop;
  if (a_vec) drop.push_back(static_cast<int>(r.ndim()) - 2);
  if (b_vec) drop.push_back(static_cast<int>(r.ndim()) - 1);
  return drop.empty() ? r : mx::squeeze(r, drop, s);
}

}  // namespace

extern "C" {

// ---- products (any device) ----

// gather_mm(a, b, lhs_indices, rhs_indices, sorted_indices): for each (broadcast) pair of
// indices, the product of matrix lhs[i] of a's batch with matrix rhs[i] of b's batch.
// An absent index list means every matrix of that operand in order. Index values are made
// safe (matrix_indices: clamped, negatives from the end).
EMILY_API int emily_gather_mm(emily_stream s, const emily_array* a, const emily_array* b,
                              emily_arrays lhs_indices, emily_arrays rhs_indices,
                              bool sorted_indices, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    auto lhs = optional_array(lhs_indices, "gather_mm", "lhs_indices");
    auto rhs = optional_array(rhs_indices, "gather_mm", "rhs_indices");
    if (a->a.ndim() == 0 || b->a.ndim() == 0)
      throw std::invalid_argument("[gather_mm] needs arrays of at least one dimension");
    if (lhs) lhs = matrix_indices(*lhs, batch_count(a->a), "gather_mm", st);
    if (rhs) rhs = matrix_indices(*rhs, batch_count(b->a), "gather_mm", st);
    // MLX checks shapes, dtypes and that the indices broadcast.
    auto r = mx::gather_mm(a->a, b->a, lhs, rhs, sorted_indices, st);
    if ((lhs || rhs) && st.device == mx::Device::cpu && r.dtype() != mx::float32)
      r = gather_mm_by_take(a->a, b->a, lhs, rhs, st);
    put(out, std::move(r));
  })
}

EMILY_API int emily_matmul(emily_stream s, const emily_array* a, const emily_array* b,
                           emily_array** out) {
  EMILY_GUARD(put(out, mx::matmul(a->a, b->a, stream(s))))
}

EMILY_API int emily_tensordot(emily_stream s, const emily_array* a, const emily_array* b,
                              emily_ints axes_a, emily_ints axes_b, emily_array** out) {
  EMILY_GUARD(put(out, mx::tensordot(a->a, b->a, ints(axes_a), ints(axes_b), stream(s))))
}

EMILY_API int emily_addmm(emily_stream s, const emily_array* c, const emily_array* a,
                          const emily_array* b, double alpha, double beta, emily_array** out) {
  EMILY_GUARD(put(out, mx::addmm(c->a, a->a, b->a, static_cast<float>(alpha),
                                 static_cast<float>(beta), stream(s))))
}

EMILY_API int emily_inner(emily_stream s, const emily_array* a, const emily_array* b,
                          emily_array** out) {
  EMILY_GUARD(put(out, mx::inner(a->a, b->a, stream(s))))
}

EMILY_API int emily_outer(emily_stream s, const emily_array* a, const emily_array* b,
                          emily_array** out) {
  EMILY_GUARD(put(out, mx::outer(a->a, b->a, stream(s))))
}

EMILY_API int emily_cross(emily_stream s, const emily_array* a, const emily_array* b,
                          int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, cross(a->a, b->a, to_int(axis, "[cross] axis"), stream(s))))
}

// Empty axes = all axes (then a must have at most 2 dims when an ord is given).
EMILY_API int emily_norm(emily_stream s, const emily_array* a, emily_norm_ord ord, double p,
                         emily_ints axes, bool keepdims, emily_array** out) {
  EMILY_GUARD({
    auto ax = opt_axes(axes);
    auto st = stream(s);
    // the ord norms may take an SVD or a max over nothing
    if (ord != EMILY_NORM_ORD_DEFAULT && ord != EMILY_NORM_ORD_FRO) nonempty(a->a, "norm");
    constexpr double inf = std::numeric_limits<double>::infinity();
    switch (ord) {
      case EMILY_NORM_ORD_DEFAULT: put(out, mx::linalg::norm(a->a, ax, keepdims, st)); break;
      case EMILY_NORM_ORD_P: put(out, mx::linalg::norm(a->a, p, ax, keepdims, st)); break;
      case EMILY_NORM_ORD_INF: put(out, mx::linalg::norm(a->a, inf, ax, keepdims, st)); break;
      case EMILY_NORM_ORD_NEG_INF: put(out, mx::linalg::norm(a->a, -inf, ax, keepdims, st)); break;
      case EMILY_NORM_ORD_FRO: put(out, mx::linalg::norm(a->a, std::string("fro"), ax, keepdims, st)); break;
      case EMILY_NORM_ORD_NUC: put(out, mx::linalg::norm(a->a, std::string("nuc"), ax, keepdims, st)); break;
      default: throw std::invalid_argument("[norm] unknown ord " + std::to_string(static_cast<int>(ord)));
    }
  })
}

// ---- factorizations and solvers (CPU stream) ----

// LAPACK's potrf stops at the first pivot that is not positive and MLX ignores the failure,
// returning a partial factor with that pivot (<= 0, or NaN) on the diagonal. A matrix that
// is not positive definite therefore comes out as NaN, as a failed decomposition should
// (never a factor L with L L^T != A).
EMILY_API int emily_cholesky(emily_stream s, const emily_array* a, bool upper,
                             emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    auto l = mx::linalg::cholesky(nonempty(a->a, "cholesky"), upper, st);
    auto d = mx::diagonal(l, 0, -2, -1, st);
    auto ok = mx::all(mx::greater(d, mx::array(0, d.dtype()), st), std::vector<int>{-1}, true, st);
    auto nan = mx::array(std::numeric_limits<float>::quiet_NaN(), l.dtype());
    put(out, mx::where(mx::expand_dims(ok, -1, st), l, nan, st));
  })
}

EMILY_API int emily_cholesky_inv(emily_stream s, const emily_array* a, bool upper,
                                 emily_array** out) {
  EMILY_GUARD(put(out, mx::linalg::cholesky_inv(nonempty(a->a, "cholesky_inv"), upper, stream(s))))
}

EMILY_API int emily_inv(emily_stream s, const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::linalg::inv(nonempty(a->a, "inv"), stream(s))))
}

EMILY_API int emily_tri_inv(emily_stream s, const emily_array* a, bool upper,
                            emily_array** out) {
  EMILY_GUARD(put(out, mx::linalg::tri_inv(nonempty(a->a, "tri_inv"), upper, stream(s))))
}

EMILY_API int emily_pinv(emily_stream s, const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::linalg::pinv(nonempty(a->a, "pinv"), stream(s))))
}

EMILY_API int emily_solve(emily_stream s, const emily_array* a, const emily_array* b,
                          emily_array** out) {
  EMILY_GUARD(put(out, mx::linalg::solve(nonempty(a->a, "solve"), nonempty(b->a, "solve"), stream(s))))
}

EMILY_API int emily_solve_triangular(emily_stream s, const emily_array* a, const emily_array* b,
                                     bool upper, emily_array** out) {
  EMILY_GUARD(put(out, mx::linalg::solve_triangular(nonempty(a->a, "solve_triangular"), nonempty(b->a, "solve_triangular"), upper, stream(s))))
}

EMILY_API int emily_eigvalsh(emily_stream s, const emily_array* a, bool upper,
                             emily_array** out) {
  EMILY_GUARD(put(out, mx::linalg::eigvalsh(nonempty(a->a, "eigvalsh"), uplo(upper), stream(s))))
}


EMILY_API int emily_det(emily_stream s, const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::linalg::det(nonempty(a->a, "det"), stream(s))))
}

EMILY_API int emily_qr(emily_stream s, const emily_array* a, emily_outs outs) {
  EMILY_GUARD(put_pair(outs, mx::linalg::qr(nonempty(a->a, "qr"), stream(s))))
}

EMILY_API int emily_svd(emily_stream s, const emily_array* a, bool compute_uv,
                        emily_outs outs) {
  EMILY_GUARD(put_all(outs, mx::linalg::svd(nonempty(a->a, "svd"), compute_uv, stream(s))))
}

EMILY_API int emily_eigh(emily_stream s, const emily_array* a, bool upper, emily_outs outs) {
  EMILY_GUARD(put_pair(outs, mx::linalg::eigh(nonempty(a->a, "eigh"), uplo(upper), stream(s))))
}

// LAPACK's geev rejects a matrix holding NaN or infinity (printing to stderr), and MLX's
// real eig then pairs eigenvector columns by the sign of garbage imaginary parts, writing
// one column past its output. Such matrices are decomposed as zeros instead and their
// eigenvalues (and eigenvectors) reported as NaN, as a failed decomposition should be.
namespace {
struct Finite {
  mx::array bad;    // [..., 1, 1]: true where the matrix has a non-finite entry
  mx::array clean;  // the input with those matrices zeroed
};

Finite finite_or_zeroed(const mx::array& m, const mx::StreamOrDevice& st) {
  auto bad = mx::logical_not(mx::all(mx::isfinite(m, st), std::vector<int>{-2, -1}, true, st), st);
  return {bad, mx::where(bad, mx::array(0, m.dtype()), m, st)};
}

mx::array complex_nan() {
  float qnan = std::numeric_limits<float>::quiet_NaN();
  return mx::array(std::complex<float>(qnan, qnan));
}

bool real_matrices(const mx::array& m) {
  return m.ndim() >= 2 && mx::issubdtype(m.dtype(), mx::floating);
}
}  // namespace

EMILY_API int emily_eigvals(emily_stream s, const emily_array* a, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    const auto& m = nonempty(a->a, "eigvals");
    if (!real_matrices(m)) {
      put(out, mx::linalg::eigvals(m, st));
      return 0;
    }
    auto f = finite_or_zeroed(m, st);
    auto vals = mx::linalg::eigvals(f.clean, st);
    put(out, mx::where(mx::squeeze(f.bad, std::vector<int>{-1}, st), complex_nan(), vals, st));
  })
}

EMILY_API int emily_eig(emily_stream s, const emily_array* a, emily_outs outs) {
  EMILY_GUARD({
    auto st = stream(s);
    const auto& m = nonempty(a->a, "eig");
    if (!real_matrices(m)) {
      put_pair(outs, mx::linalg::eig(m, st));
      return 0;
    }
    auto f = finite_or_zeroed(m, st);
    auto [vals, vecs] = mx::linalg::eig(f.clean, st);
    auto nan = complex_nan();
    vals = mx::where(mx::squeeze(f.bad, std::vector<int>{-1}, st), nan, vals, st);
    vecs = mx::where(f.bad, nan, vecs, st);
    put_all(outs, {std::move(vals), std::move(vecs)});
  })
}

EMILY_API int emily_lu(emily_stream s, const emily_array* a, emily_outs outs) {
  EMILY_GUARD(put_all(outs, mx::linalg::lu(nonempty(a->a, "lu"), stream(s))))
}

EMILY_API int emily_lu_factor(emily_stream s, const emily_array* a, emily_outs outs) {
  EMILY_GUARD(put_pair(outs, mx::linalg::lu_factor(nonempty(a->a, "lu_factor"), stream(s))))
}

EMILY_API int emily_slogdet(emily_stream s, const emily_array* a, emily_outs outs) {
  EMILY_GUARD(put_pair(outs, mx::linalg::slogdet(nonempty(a->a, "slogdet"), stream(s))))
}
}
