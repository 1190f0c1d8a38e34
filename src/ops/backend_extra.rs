//! Ops Emily.Backend needs beyond MLX's public op list (src/cpp/backend_extra.cc).

/// The backend_extra family's table.
///
/// * `as_strided(a, shape, strides, offset)`: a view of the row-major elements of `a`
///   (made contiguous first) with the given shape and element strides, starting at
///   element `offset`. Strides must be non-negative and every reachable element inside
///   `a`; anything else is refused (no out-of-bounds reads).
/// * `precise_unary(a, op)`: float64 math with the C library on the CPU (MLX's float64
///   exp, sin, cos, erf, ... compute in single precision). `op`: 0 exp, 1 expm1, 2 log,
///   3 log1p, 4 sigmoid, 5 cos, 6 sin, 7 tan, 8 cosh, 9 sinh, 10 tanh, 11 acos, 12 asin,
///   13 atan, 14 acosh, 15 asinh, 16 atanh, 17 sqrt, 18 rsqrt, 19 cbrt, 20 erf, 21 erfc,
///   22 erf_inv (Nx's approximation).
#[macro_export]
macro_rules! backend_extra_table {
    ($m:path) => {
        $m! {
            as_strided(a: A, shape: I, strides: I, offset: N);
            precise_unary(a: A, op: N);
        }
    };
}

backend_extra_table!(crate::mlx_ops);
