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
/// Indices are integer arrays (any integer dtype; bool and floats are refused). Their
/// values are only known when the graph runs, and MLX's kernels do not bounds-check them,
/// so the shim makes every value safe (a few elementwise nodes per index array):
///
/// * gathers (`take`, `take_axis`, `take_along_axis`, `gather`) **clamp**: a negative index
///   in `[-n, -1]` counts from the end (as in numpy/MLX), anything below `-n` reads element
///   0, anything past the end reads element `n - 1`. A `gather` slice wider than 1 has its
///   start clamped (after counting negatives from the end) so the whole slice fits, as XLA
///   does. Taking from an axis of size 0 is refused unless the result is empty.
/// * scatters (`scatter*`, `put_along_axis`, `scatter_add_axis`) **drop** an update whose
///   index is out of range (negatives in `[-n, -1]` count from the end), or whose slice
///   would not fit along every indexed axis: the array keeps its value there. (The
///   combining scatters combine the identity instead; `scatter`/`put_along_axis` write it
///   to a scratch row that is cut off.)
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
