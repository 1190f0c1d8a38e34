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
