//! Which OpenBLAS kernels MLX's CPU matmuls run (`emily::blas::core`).

#[cfg(target_os = "linux")]
#[test]
fn openblas_reports_its_kernel_family_and_follows_openblas_coretype() {
    // Emily links Debian's OpenBLAS, built for several CPUs.
    let core = emily::blas::core().expect("a DYNAMIC_ARCH OpenBLAS serves cblas_sgemm");
    assert!(!core.is_empty() && core.len() < 64, "{core:?}");
    if let Ok(wanted) = std::env::var("OPENBLAS_CORETYPE") {
        assert!(core.eq_ignore_ascii_case(&wanted), "{core} against OPENBLAS_CORETYPE={wanted}");
    }
}
