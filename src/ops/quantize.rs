//! Quantization (src/cpp/quantize.cc).

/// The quantize family's table. `mode`: 0 = affine, 1 = mxfp4, 2 = mxfp8, 3 = nvfp4;
/// `group_size`, `bits` <= 0 = the mode's defaults (affine: 64 and 4). Other values must be
/// ones the mode supports (checked by the shim for all three ops, MLX divides by them
/// first): affine group sizes 32, 64, 128 and 2, 3, 4, 5, 6 or 8 bits; mxfp4 32 and 4;
/// mxfp8 32 and 8; nvfp4 16 and 4. `biases` is a list of 0 or 1 arrays (affine
/// quantization has biases, the fp modes don't).
///
/// * `quantize(w, group_size, bits, mode)` -> [w_q, scales, biases] (affine) or
///   [w_q, scales]: groups of `group_size` along the last axis, packed into u32 words.
/// * `dequantize(w_q, scales, biases, group_size, bits, mode)`.
/// * `quantized_matmul(x, w_q, scales, biases, transpose, group_size, bits, mode)`:
///   `x @ dequantize(w).T` when `transpose`, else `x @ dequantize(w)`.
/// * `gather_qmm(x, w_q, scales, biases, lhs_indices, rhs_indices, transpose, group_size,
///   bits, mode, sorted_indices)`: `quantized_matmul` with a matrix-level gather, as
///   `gather_mm`: `lhs_indices`/`rhs_indices` (lists of 0 or 1 integer arrays; absent =
///   every matrix in order) pick matrices of x's batch `[..batch_x, M, K]` and of w's batch
///   (w, scales and biases `[..batch_w, ., .]`), broadcast against each other: the result is
///   `[..indices, M, N]`. Index values are made safe as `take` does (negatives from the end,
///   others clamped to the first or last matrix); `sorted_indices` is a hint for MLX's GPU
///   kernels. Computes in f32, f16 or bf16.
///
/// `w`, `scales` and `biases` must have the same number of dimensions (at least 2), biases
/// the shape of scales.
#[macro_export]
macro_rules! quantize_table {
    ($m:path) => {
        $m! {
            quantize(w: A, group_size: N, bits: N, mode: N) -> many;
            dequantize(w: A, scales: A, biases: AS, group_size: N, bits: N, mode: N);
            quantized_matmul(x: A, w: A, scales: A, biases: AS, transpose: B, group_size: N,
                             bits: N, mode: N);
            gather_qmm(x: A, w: A, scales: A, biases: AS, lhs_indices: AS, rhs_indices: AS,
                       transpose: B, group_size: N, bits: N, mode: N, sorted_indices: B);
        }
    };
}

quantize_table!(crate::mlx_ops);
