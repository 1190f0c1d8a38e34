//! Emily's core: MLX arrays through a C++ shim, worker threads that own MLX streams, the
//! buffer alias ledger, and one function per MLX op (in `ops`). No BEAM here: the NIF crate
//! (`native/`) is a thin layer over this one.
pub mod array;
pub mod blas;
pub mod direct;
pub mod dtype;
pub mod error;
pub mod ffi;
pub mod ledger;
pub mod mapped;
pub mod memory;
pub mod ops;
pub mod program;
pub mod queue;
pub mod sync;
pub mod threads;
pub mod worker;

pub use array::{async_eval, eval, eval_if_cheap, external_aliasing, scan_and_eval, Array, Scan};
pub use dtype::Dtype;
pub use error::{Error, ErrorKind, Result};
pub use worker::{Ctx, Device, InfoValue, Stream, Worker};

/// Turns Emily's CPU kernels (src/cpp/kernels) on or off for ops built from now on; returns
/// the previous setting, or None where this build or CPU has no kernels.
pub fn set_cpu_kernels(on: bool) -> Option<bool> {
    match unsafe { ffi::emily_cpu_kernels(on as std::os::raw::c_int) } {
        r if r < 0 => None,
        r => Some(r != 0),
    }
}

/// The instruction set Emily's CPU kernels use here ("avx512", "avx2"), or None without them.
pub fn cpu_kernels_isa() -> Option<String> {
    let p = unsafe { ffi::emily_cpu_kernels_isa() };
    (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// MLX's version string.
pub fn mlx_version() -> String {
    unsafe { std::ffi::CStr::from_ptr(ffi::emily_mlx_version()) }.to_string_lossy().into_owned()
}
