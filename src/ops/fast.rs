//! Fused ops from `mlx::core::fast` (src/cpp/fast.cc).

/// The fast family's table. Optional arrays are `AS` lists of 0 or 1 arrays.
///
/// * `rms_norm(x, weight, eps)`, `layer_norm(x, weight, bias, eps)`: over the last axis.
/// * `rope(x, dims, traditional, base, scale, offset, freqs)`: rotary embedding of the first
///   `dims` features of the last axis, positions `offset..` along the second-to-last axis;
///   `base` is ignored when `freqs` (one array) is given. `rope_offset` takes the offset as
///   a scalar array.
/// * `scaled_dot_product_attention(q, k, v, scale, causal, mask, sinks)`: q `[B, Hq, Lq, D]`,
///   k/v `[B, Hkv, Lk, D]`; `mask` is an additive (float) or keep (bool) mask broadcastable
///   to `[B, Hq, Lq, Lk]`; `causal` and a mask are exclusive; k/v need at least one head.
/// * `cross_entropy(logits, targets)`: per-row loss with integer class-index targets,
///   clamped into range like a gather's (negatives in `[-C, -1]` count from the end).
#[macro_export]
macro_rules! fast_table {
    ($m:path) => {
        $m! {
            rms_norm(x: A, weight: AS, eps: F);
            layer_norm(x: A, weight: AS, bias: AS, eps: F);
            rope(x: A, dims: N, traditional: B, base: F, scale: F, offset: N, freqs: AS);
            rope_offset(x: A, dims: N, traditional: B, base: F, scale: F, offset: A, freqs: AS);
            scaled_dot_product_attention(q: A, k: A, v: A, scale: F, causal: B, mask: AS,
                                         sinks: AS);
            cross_entropy(logits: A, targets: A);
        }
    };
}

fast_table!(crate::mlx_ops);
