//! Which BLAS MLX's CPU kernels call, and with how many threads (`mix emily.doctor`).

/// OpenBLAS's kernel family, `nil` when the BLAS is not a DYNAMIC_ARCH OpenBLAS.
#[rustler::nif]
pub fn blas_core() -> Option<String> {
    emily::blas::core()
}

/// OpenBLAS's thread count, `nil` when the BLAS is not OpenBLAS.
#[rustler::nif]
pub fn blas_threads() -> Option<usize> {
    emily::blas::threads()
}
