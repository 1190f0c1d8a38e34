//! Array creation and dtype conversion (src/cpp/creation.cc).

/// The creation family's table.
///
/// * `full(shape, value, dtype)`: `value` (a float) converted to `dtype` on the host, then
///   broadcast; NaN or infinity for an integer or bool dtype is refused. `full_int` takes
///   an integer value (exact for 64-bit integers; for `u64` pass the two's complement
///   bits, -1 for 2^64 - 1), `full_complex` a real and imaginary part.
/// * `scalar`, `scalar_int`, `scalar_complex`: a 0-d array made on the host (no graph node).
/// * `arange(start, stop, step, dtype)`: start, stop, step finite, step non-zero.
/// * `linspace(start, stop, num, endpoint, dtype)`.
/// * `eye(n, m, k, dtype)`, `identity(n, dtype)`, `tri(n, m, k, dtype)`: ones on (or
///   below) diagonal `k`. `tril(a, k)`, `triu(a, k)`: keep the lower/upper triangle. Any
///   64-bit `k` works: diagonals past a corner select all or no elements.
/// * `astype(a, dtype)` converts values; `view(a, dtype)` reinterprets the bytes (bitcast;
///   the last axis scales with the itemsize ratio); `contiguous(a, allow_col_major)`.
#[macro_export]
macro_rules! creation_table {
    ($m:path) => {
        $m! {
            full(shape: I, value: F, dtype: D); full_int(shape: I, value: N, dtype: D);
            full_complex(shape: I, re: F, im: F, dtype: D);
            scalar(value: F, dtype: D); scalar_int(value: N, dtype: D);
            scalar_complex(re: F, im: F, dtype: D);
            zeros(shape: I, dtype: D); ones(shape: I, dtype: D);
            zeros_like(a: A); ones_like(a: A);
            arange(start: F, stop: F, step: F, dtype: D);
            linspace(start: F, stop: F, num: N, endpoint: B, dtype: D);
            eye(n: N, m: N, k: N, dtype: D); identity(n: N, dtype: D);
            tri(n: N, m: N, k: N, dtype: D); tril(a: A, k: N); triu(a: A, k: N);
            astype(a: A, dtype: D); view(a: A, dtype: D); contiguous(a: A, allow_col_major: B);
        }
    };
}

creation_table!(crate::mlx_ops);
