//! The three resource types: tensors (MLX arrays), workers, and aliases (the owners of
//! resource binaries that point into MLX buffers).
use std::sync::Arc;

use emily::{Array, Worker};
use rustler::{Env, ResourceArc};

use crate::aliases;
use crate::pressure::{self, Owner};

/// An MLX array held by the BEAM. Dropped on its worker's thread.
pub struct TensorRes {
    array: Option<Array>,
    pub worker: Arc<Worker>,
    /// The process that made the handle (for GC accounting), when known.
    owner: Option<Owner>,
    /// Bytes counted in the handle accounting (see pressure.rs).
    accounted: usize,
}

#[rustler::resource_impl]
impl rustler::Resource for TensorRes {}

impl TensorRes {
    /// A handle made by the calling process of `env` (counted as that process's bytes).
    pub fn arc(env: Env, array: Array, worker: &Arc<Worker>) -> ResourceArc<TensorRes> {
        ResourceArc::new(TensorRes::owned_by(Some(Owner::of(env)), array, worker.clone()))
    }

    /// A handle with no known owner (made off a BEAM process, e.g. on a worker).
    pub fn new(array: Array, worker: Arc<Worker>) -> TensorRes {
        TensorRes::owned_by(None, array, worker)
    }

    fn owned_by(owner: Option<Owner>, array: Array, worker: Arc<Worker>) -> TensorRes {
        let accounted = array.nbytes();
        pressure::account(owner, accounted);
        TensorRes { array: Some(array), worker, owner, accounted }
    }

    /// A short-lived handle used inside the bridge (not counted).
    pub fn internal(array: Array, worker: Arc<Worker>) -> TensorRes {
        TensorRes { array: Some(array), worker, owner: None, accounted: 0 }
    }

    pub fn array(&self) -> &Array {
        self.array.as_ref().expect("tensor used after drop")
    }

    /// `f32[2][3]`, for error messages.
    pub fn describe(&self) -> String {
        let a = self.array();
        let mut s = a.dtype().name().to_string();
        for d in a.shape() {
            s.push_str(&format!("[{d}]"));
        }
        s
    }
}

impl Drop for TensorRes {
    fn drop(&mut self) {
        if self.accounted > 0 {
            pressure::unaccount(self.owner, self.accounted);
        }
        if let Some(a) = self.array.take() {
            self.worker.release(a);
        }
    }
}

/// A worker thread and its stream(s).
pub struct WorkerRes {
    pub worker: Arc<Worker>,
}

#[rustler::resource_impl]
impl rustler::Resource for WorkerRes {}

/// Owner of resource binaries aliasing one MLX buffer: the bytes stay valid while it lives,
/// because the ledger holds the buffer until the last alias is released.
pub struct AliasRes {
    pub key: usize,
    pub ptr: *const u8,
    pub len: usize,
    pub worker: Arc<Worker>,
}

unsafe impl Send for AliasRes {}
unsafe impl Sync for AliasRes {}

#[rustler::resource_impl]
impl rustler::Resource for AliasRes {}

impl AliasRes {
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for AliasRes {
    fn drop(&mut self) {
        aliases::release_alias(self.key, &self.worker);
    }
}

pub type Tensor = rustler::ResourceArc<TensorRes>;
pub type WorkerArc = rustler::ResourceArc<WorkerRes>;
