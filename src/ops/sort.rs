//! Sorting, partitioning and top-k along one axis (src/cpp/sort.cc).

/// The sort family's table. Sorts are stable and put NaNs last; `argsort`/`argpartition`
/// give `u32` indices. `partition(a, kth, axis)`: the element at `kth` is where a sort
/// would put it, smaller ones before, larger ones after. `topk(a, k, axis)`: the `k`
/// largest, in no particular order.
#[macro_export]
macro_rules! sort_table {
    ($m:path) => {
        $m! {
            sort(a: A, axis: N); argsort(a: A, axis: N);
            partition(a: A, kth: N, axis: N); argpartition(a: A, kth: N, axis: N);
            topk(a: A, k: N, axis: N);
        }
    };
}

sort_table!(crate::mlx_ops);
