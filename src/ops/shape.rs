//! Shape and layout ops (src/cpp/shape.cc).

/// The shape family's table.
///
/// * `reshape(a, shape)` (one dimension may be -1, not beside a 0; no other negative
///   sizes), `transpose(a, axes)`,
///   `squeeze(a, axes)`, `expand_dims(a, axes)`, `broadcast_to(a, shape)`,
///   `flatten(a, start_axis, end_axis)`, `unflatten(a, axis, shape)`, `swapaxes`,
///   `moveaxis(a, source, destination)`, `flip(a, axes)`, `tile(a, reps)`,
///   `repeat(a, repeats, axis)`.
/// * `pad(a, axes, low, high, value, mode)`: `value` a one-element array; mode 0 = constant,
///   1 = edge (repeat the border value); `axes` in range and distinct.
/// * `concatenate(arrays, axis)`, `stack(arrays, axis)`.
/// * `slice(a, start, stop, strides)`: one entry per axis; negative strides walk backwards.
///   `slice_dynamic(a, start, axes, sizes)`: `start` an integer array (one entry per axis
///   in `axes`) computed at run time; the window has `sizes` along every axis.
/// * `slice_update(src, update, start, stop, strides)`: `src` with the slice replaced by
///   `update`; `slice_update_add`/`_prod`/`_max`/`_min` combine instead of replacing.
///   `slice_update_dynamic(src, update, start, axes)`.
/// * `select(cond, x, y)`: MLX's `where` (a Rust keyword), broadcasting all three.
/// * `clip(a, min, max)`: `min`/`max` lists of zero or one array (absent = no bound).
/// * Multi-output, any number of outputs: `split(a, parts, axis)` -> `parts` equal parts
///   (the axis size a multiple of `parts`); `split_indices(a, indices, axis)` -> the
///   `len(indices) + 1` parts between the boundaries (numpy's `array_split` with indices:
///   negatives count from the end, out-of-range boundaries are clamped (boundaries outside
///   the 32-bit range are refused, as every index is), a boundary below the
///   one before it gives an empty part); `unstack(a, axis)` -> the `shape[axis]` slices
///   along `axis` without it. At most RAM + swap / 1 KiB outputs (their handles alone would
///   not fit): a huge lazy broadcast or an empty axis could ask for billions.
#[macro_export]
macro_rules! shape_table {
    ($m:path) => {
        $m! {
            reshape(a: A, shape: I); transpose(a: A, axes: I); squeeze(a: A, axes: I);
            expand_dims(a: A, axes: I); broadcast_to(a: A, shape: I);
            pad(a: A, axes: I, low: I, high: I, value: A, mode: N);
            concatenate(arrays: AS, axis: N); stack(arrays: AS, axis: N);
            slice(a: A, start: I, stop: I, strides: I);
            slice_dynamic(a: A, start: A, axes: I, sizes: I);
            slice_update(src: A, update: A, start: I, stop: I, strides: I);
            slice_update_dynamic(src: A, update: A, start: A, axes: I);
            slice_update_add(src: A, update: A, start: I, stop: I, strides: I);
            slice_update_prod(src: A, update: A, start: I, stop: I, strides: I);
            slice_update_max(src: A, update: A, start: I, stop: I, strides: I);
            slice_update_min(src: A, update: A, start: I, stop: I, strides: I);
            flip(a: A, axes: I); tile(a: A, reps: I); repeat(a: A, repeats: N, axis: N);
            swapaxes(a: A, axis1: N, axis2: N); moveaxis(a: A, source: N, destination: N);
            select(cond: A, x: A, y: A); clip(a: A, min: AS, max: AS);
            flatten(a: A, start_axis: N, end_axis: N); unflatten(a: A, axis: N, shape: I);
            split(a: A, parts: N, axis: N) -> many;
            split_indices(a: A, indices: I, axis: N) -> many;
            unstack(a: A, axis: N) -> many;
        }
    };
}

shape_table!(crate::mlx_ops);
