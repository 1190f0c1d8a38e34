//! Reductions, arg-reductions and cumulative ops (src/cpp/reduce.cc).

/// The reduce family's table.
///
/// * `sum`, `prod`, `max`, `min`, `all`, `any`, `mean`, `logsumexp`, `median`
///   `(a, axes, keepdims)`: reduce over `axes` (negative axes count from the end; an empty
///   list reduces nothing). `var`, `std` also take `ddof`. `logsumexp` and `logcumsumexp`
///   convert integer and bool inputs to f32 first (MLX 0.32 gets them wrong otherwise).
/// * `argmax`, `argmin(a, axis, keepdims)`: `u32` indices along one axis.
/// * `cumsum`, `cumprod`, `cummax`, `cummin`, `logcumsumexp(a, axis, reverse, inclusive)`.
#[macro_export]
macro_rules! reduce_table {
    ($m:path) => {
        $m! {
            sum(a: A, axes: I, keepdims: B); prod(a: A, axes: I, keepdims: B);
            max(a: A, axes: I, keepdims: B); min(a: A, axes: I, keepdims: B);
            all(a: A, axes: I, keepdims: B); any(a: A, axes: I, keepdims: B);
            mean(a: A, axes: I, keepdims: B); logsumexp(a: A, axes: I, keepdims: B);
            median(a: A, axes: I, keepdims: B);
            var(a: A, axes: I, keepdims: B, ddof: N); std(a: A, axes: I, keepdims: B, ddof: N);
            argmax(a: A, axis: N, keepdims: B); argmin(a: A, axis: N, keepdims: B);
            cumsum(a: A, axis: N, reverse: B, inclusive: B);
            cumprod(a: A, axis: N, reverse: B, inclusive: B);
            cummax(a: A, axis: N, reverse: B, inclusive: B);
            cummin(a: A, axis: N, reverse: B, inclusive: B);
            logcumsumexp(a: A, axis: N, reverse: B, inclusive: B);
        }
    };
}

reduce_table!(crate::mlx_ops);
