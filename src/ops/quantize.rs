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
#[macro_export]
macro_rules! quantize_table {
    ($m:path) => {
        $m! {
            quantize(w: A, group_size: N, bits: N, mode: N) -> many;
            dequantize(w: A, scales: A, biases: AS, group_size: N, bits: N, mode: N);
            quantized_matmul(x: A, w: A, scales: A, biases: AS, transpose: B, group_size: N,
                             bits: N, mode: N);
        }
    };
}

quantize_table!(crate::mlx_ops);
