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

/// MLX's version string.
pub fn mlx_version() -> String {
    unsafe { std::ffi::CStr::from_ptr(ffi::emily_mlx_version()) }.to_string_lossy().into_owned()
}
