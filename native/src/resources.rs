//! The three resource types: tensors (MLX arrays), workers, and aliases (the owners of
//! resource binaries that point into MLX buffers).
use std::sync::Arc;

use emily::{Array, Worker};

use crate::bridge;

/// An MLX array held by the BEAM. Dropped on its worker's thread.
pub struct TensorRes {
    array: Option<Array>,
    pub worker: Arc<Worker>,
    /// Bytes counted in the handle-pressure accounting (see bridge.rs).
    accounted: usize,
}

#[rustler::resource_impl]
impl rustler::Resource for TensorRes {}

impl TensorRes {
    pub fn new(array: Array, worker: Arc<Worker>) -> TensorRes {
        let accounted = bridge::account_handle(array.nbytes());
        TensorRes { array: Some(array), worker, accounted }
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
        bridge::unaccount_handle(self.accounted);
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
        bridge::release_alias(self.key, &self.worker);
    }
}

pub type Tensor = rustler::ResourceArc<TensorRes>;
pub type WorkerArc = rustler::ResourceArc<WorkerRes>;
