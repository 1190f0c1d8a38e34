//! Matrix products and `mlx::core::linalg` (src/cpp/linalg.cc).

/// Products and norms, built on the worker's own stream (any device).
///
/// * `tensordot(a, b, axes_a, axes_b)` contracts `axes_a` of `a` with `axes_b` of `b`.
/// * `addmm(c, a, b, alpha, beta)` is `beta * c + alpha * (a @ b)`.
/// * `gather_mm(a, b, lhs_indices, rhs_indices, sorted_indices)`: matrix-level gather
///   and product. `a` is `[..batch_a, M, K]`, `b` `[..batch_b, K, N]` (a 1-d operand is one
///   row or column, as in `matmul`); `lhs_indices`/`rhs_indices` (lists of 0 or 1 integer
///   arrays; absent = every matrix of that operand, in order, shaped like its batch) pick
///   matrices of the flattened batches, broadcast against each other: the result is
///   `[..indices, M, N]`. Index values are made safe as `take` does (negatives in
///   `[-batch, -1]` from the end, others clamped to the first or last matrix).
///   `sorted_indices` is a hint for MLX's GPU kernels (the indices are sorted); it changes
///   nothing on the CPU. Real floating types; on the CPU, types other than f32 go through
///   take + matmul (MLX's CPU kernel is f32 only).
/// * `norm(a, ord_kind, p, axes, keepdims)`: `ord_kind` 0 = default (2-norm of vectors,
///   Frobenius of matrices), 1 = the number `p`, 2 = inf, 3 = -inf, 4 = Frobenius,
///   5 = nuclear (an SVD: CPU only). Empty `axes` = every axis. Kinds other than 0 and 4
///   refuse empty inputs.
#[macro_export]
macro_rules! linalg_table {
    ($m:path) => {
        $m! {
            matmul(a: A, b: A);
            gather_mm(a: A, b: A, lhs_indices: AS, rhs_indices: AS, sorted_indices: B);
            tensordot(a: A, b: A, axes_a: I, axes_b: I);
            addmm(c: A, a: A, b: A, alpha: F, beta: F);
            inner(a: A, b: A);
            outer(a: A, b: A);
            cross(a: A, b: A, axis: N);
            norm(a: A, ord_kind: N, p: F, axes: I, keepdims: B);
        }
    };
}

/// Factorizations and solvers: MLX runs them only on the CPU, so the NIFs build them on the
/// worker's CPU stream (`Worker::cpu_stream`) whatever its device.
///
/// `upper` picks the upper triangle (`"U"`) instead of the lower one. Multi-output ops:
/// `qr` -> [q, r]; `svd` -> [u, s, vt] (or [s] without `compute_uv`); `eigh`, `eig` ->
/// [eigenvalues, eigenvectors]; `lu` -> [pivots, l, u]; `lu_factor` -> [lu, pivots];
/// `slogdet` -> [sign, log|det|]. Empty inputs (a 0 x 0 matrix, an empty batch) are
/// refused: MLX divides by the matrix size.
#[macro_export]
macro_rules! linalg_cpu_table {
    ($m:path) => {
        $m! {
            cholesky(a: A, upper: B);
            cholesky_inv(a: A, upper: B);
            inv(a: A);
            tri_inv(a: A, upper: B);
            pinv(a: A);
            solve(a: A, b: A);
            solve_triangular(a: A, b: A, upper: B);
            eigvalsh(a: A, upper: B);
            eigvals(a: A);
            det(a: A);
            qr(a: A) -> many;
            svd(a: A, compute_uv: B) -> many;
            eigh(a: A, upper: B) -> many;
            eig(a: A) -> many;
            lu(a: A) -> many;
            lu_factor(a: A) -> many;
            slogdet(a: A) -> many;
        }
    };
}

linalg_table!(crate::mlx_ops);

/// The CPU-only part (see [`linalg_cpu_table!`]).
pub mod cpu {
    linalg_cpu_table!(crate::mlx_ops);
}
