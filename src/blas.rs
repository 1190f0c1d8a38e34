//! The BLAS library MLX's CPU kernels call (see src/cpp/blas.cc).
use std::ffi::{c_char, CStr};

use crate::ffi;

/// OpenBLAS's kernel family ("Haswell", "SkylakeX", ...); `None` when the BLAS in use is not
/// an OpenBLAS built for several CPUs (DYNAMIC_ARCH).
pub fn core() -> Option<String> {
    let mut buf = [0 as c_char; 64];
    if unsafe { ffi::emily_blas_core(buf.as_mut_ptr(), buf.len()) } != 1 {
        return None;
    }
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// OpenBLAS's thread count; `None` when the BLAS in use is not OpenBLAS.
pub fn threads() -> Option<usize> {
    usize::try_from(unsafe { ffi::emily_blas_threads() }).ok().filter(|&n| n > 0)
}

/// Gives OpenBLAS one thread per CPU of the process (capped as `OPENBLAS_NUM_THREADS`,
/// `GOTO_NUM_THREADS` or `OMP_NUM_THREADS` cap it), its new threads started with the
/// process's CPU set, where it has fewer; returns the count after (`None`: not OpenBLAS).
///
/// OpenBLAS sizes its pool from the CPU set of the thread that loads it. In a BEAM with bound
/// schedulers (`+sbt`) that is one CPU, and every matmul then runs on one thread (see
/// `src/cpp/threads.cc`). The NIF library calls this when it loads.
pub fn fit_threads() -> Option<usize> {
    usize::try_from(unsafe { ffi::emily_blas_fit_threads() }).ok().filter(|&n| n > 0)
}
