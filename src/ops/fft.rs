//! Fourier transforms (src/cpp/fft.cc).

/// The fft family's table. `norm`: 0 = "backward" (no scaling forward, 1/n inverse),
/// 1 = "ortho" (1/sqrt(n) both ways), 2 = "forward" (1/n forward).
///
/// * `fftn`, `ifftn`, `rfftn`, `irfftn(a, n, axes, norm)`: transform along `axes`, `n` the
///   signal sizes along them (empty: the array's sizes; for `irfftn` the last one then is
///   `2 * (size - 1)`).
/// * `fft`, `ifft`, `rfft`, `irfft(a, n, axis, norm)`: one axis, `n <= 0` = the array's size.
/// * `fft2`, `ifft2`, `rfft2`, `irfft2(a, n, axes, norm)`: the n-dimensional ones on exactly
///   two axes; empty `axes` = the last two.
/// * `fftshift`, `ifftshift(a, axes)`: empty `axes` = every axis.
#[macro_export]
macro_rules! fft_table {
    ($m:path) => {
        $m! {
            fftn(a: A, n: I, axes: I, norm: N);
            ifftn(a: A, n: I, axes: I, norm: N);
            rfftn(a: A, n: I, axes: I, norm: N);
            irfftn(a: A, n: I, axes: I, norm: N);
            fft(a: A, n: N, axis: N, norm: N);
            ifft(a: A, n: N, axis: N, norm: N);
            rfft(a: A, n: N, axis: N, norm: N);
            irfft(a: A, n: N, axis: N, norm: N);
            fft2(a: A, n: I, axes: I, norm: N);
            ifft2(a: A, n: I, axes: I, norm: N);
            rfft2(a: A, n: I, axes: I, norm: N);
            irfft2(a: A, n: I, axes: I, norm: N);
            fftshift(a: A, axes: I);
            ifftshift(a: A, axes: I);
        }
    };
}

fft_table!(crate::mlx_ops);
