//! Convolutions (src/cpp/conv.cc).

/// The conv family's table. MLX is channels-last: `input` is `[N, spatial..., C_in]`,
/// `weight` is `[C_out, spatial..., C_in / groups]`, the result `[N, spatial..., C_out]`.
///
/// * `conv_general(input, weight, stride, padding_lo, padding_hi, kernel_dilation,
///   input_dilation, groups, flip)`: one value per spatial axis in each list (an empty list
///   means the default: 1 for strides and dilations, 0 for padding); `flip` computes a
///   true convolution (flipped kernel) instead of a cross-correlation.
/// * `conv1d`, `conv_transpose1d`: scalars; `conv2d`/`conv3d` and their transposes: lists of
///   exactly 2 / 3 values. `conv_general`'s lists also take a single value for every axis.
/// * Checked by the shim (MLX divides by `groups` before checking it): `groups`, strides and
///   dilations at least 1; every value within int32. Negative padding crops.
#[macro_export]
macro_rules! conv_table {
    ($m:path) => {
        $m! {
            conv_general(input: A, weight: A, stride: I, padding_lo: I, padding_hi: I,
                         kernel_dilation: I, input_dilation: I, groups: N, flip: B);
            conv1d(input: A, weight: A, stride: N, padding: N, dilation: N, groups: N);
            conv2d(input: A, weight: A, stride: I, padding: I, dilation: I, groups: N);
            conv3d(input: A, weight: A, stride: I, padding: I, dilation: I, groups: N);
            conv_transpose1d(input: A, weight: A, stride: N, padding: N, dilation: N,
                             output_padding: N, groups: N);
            conv_transpose2d(input: A, weight: A, stride: I, padding: I, dilation: I,
                             output_padding: I, groups: N);
            conv_transpose3d(input: A, weight: A, stride: I, padding: I, dilation: I,
                             output_padding: I, groups: N);
        }
    };
}

conv_table!(crate::mlx_ops);
