//! Elementwise binary ops, comparisons, logical and bitwise ops (src/cpp/binary.cc).

/// The binary family's table: `name(a: A, b: A)`, MLX's op of the same name.
#[macro_export]
macro_rules! binary_table {
    ($m:path) => {
        $m! {
            add(a: A, b: A); subtract(a: A, b: A); multiply(a: A, b: A); divide(a: A, b: A);
            floor_divide(a: A, b: A); remainder(a: A, b: A); power(a: A, b: A);
            maximum(a: A, b: A); minimum(a: A, b: A); arctan2(a: A, b: A);
            logaddexp(a: A, b: A); equal(a: A, b: A); not_equal(a: A, b: A);
            less(a: A, b: A); less_equal(a: A, b: A); greater(a: A, b: A);
            greater_equal(a: A, b: A); logical_and(a: A, b: A); logical_or(a: A, b: A);
            bitwise_and(a: A, b: A); bitwise_or(a: A, b: A); bitwise_xor(a: A, b: A);
            left_shift(a: A, b: A); right_shift(a: A, b: A);
        }
    };
}

binary_table!(crate::mlx_ops);
