//! Indexing ops: take, gather, scatter (src/cpp/index.cc).

/// The index family's table.
///
/// * `take(a, indices)` indexes the flattened `a`; `take_axis` indexes along `axis`.
/// * `take_along_axis`, `put_along_axis`, `scatter_add_axis`: `indices` broadcast against
///   `a` along every axis but `axis`.
/// * `gather(a, indices, axes, slice_sizes)`: `indices[i]` index axis `axes[i]`; the result
///   has the broadcast index shape followed by `slice_sizes` (one per axis of `a`).
/// * `scatter*(a, indices, updates, axes)`: the inverse of gather; `updates` has the
///   broadcast index shape followed by one slice size per axis of `a`. `scatter` replaces,
///   the others combine with the existing value.
///
/// MLX has no `nonzero`/`argwhere` (their output shape depends on the data).
#[macro_export]
macro_rules! index_table {
    ($m:path) => {
        $m! {
            take(a: A, indices: A);
            take_axis(a: A, indices: A, axis: N);
            take_along_axis(a: A, indices: A, axis: N);
            put_along_axis(a: A, indices: A, values: A, axis: N);
            scatter_add_axis(a: A, indices: A, values: A, axis: N);
            gather(a: A, indices: AS, axes: I, slice_sizes: I);
            scatter(a: A, indices: AS, updates: A, axes: I);
            scatter_add(a: A, indices: AS, updates: A, axes: I);
            scatter_prod(a: A, indices: AS, updates: A, axes: I);
            scatter_max(a: A, indices: AS, updates: A, axes: I);
            scatter_min(a: A, indices: AS, updates: A, axes: I);
        }
    };
}

index_table!(crate::mlx_ops);
