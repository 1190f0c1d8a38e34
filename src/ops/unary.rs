//! Elementwise unary ops (src/cpp/unary.cc).

/// The unary family's table: `name(a: A)`, MLX's op of the same name.
#[macro_export]
macro_rules! unary_table {
    ($m:path) => {
        $m! {
            abs(a: A); negative(a: A); sign(a: A); logical_not(a: A); bitwise_invert(a: A);
            floor(a: A); ceil(a: A); round(a: A); square(a: A); sqrt(a: A); rsqrt(a: A);
            reciprocal(a: A); exp(a: A); expm1(a: A); log(a: A); log1p(a: A); log2(a: A);
            log10(a: A); sin(a: A); cos(a: A); tan(a: A); arcsin(a: A); arccos(a: A);
            arctan(a: A); sinh(a: A); cosh(a: A); tanh(a: A); arcsinh(a: A); arccosh(a: A);
            arctanh(a: A); sigmoid(a: A); erf(a: A); erfinv(a: A); isnan(a: A); isinf(a: A);
            isfinite(a: A); isposinf(a: A); isneginf(a: A); real(a: A); imag(a: A);
            conjugate(a: A); degrees(a: A); radians(a: A); stop_gradient(a: A); copy(a: A);
        }
    };
}

unary_table!(crate::mlx_ops);
