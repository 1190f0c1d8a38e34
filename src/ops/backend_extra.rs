//! Ops Emily.Backend needs beyond MLX's public op list (src/cpp/backend_extra.cc).

/// The backend_extra family's table.
///
/// * `as_strided(a, shape, strides, offset)`: a view of the row-major elements of `a`
///   (made contiguous first) with the given shape and element strides, starting at
///   element `offset`. Strides must be non-negative and every reachable element inside
///   `a`; anything else is refused (no out-of-bounds reads).
#[macro_export]
macro_rules! backend_extra_table {
    ($m:path) => {
        $m! {
            as_strided(a: A, shape: I, strides: I, offset: N);
        }
    };
}

backend_extra_table!(crate::mlx_ops);
