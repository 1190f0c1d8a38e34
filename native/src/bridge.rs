//! The binary bridge: tensors in and out of the BEAM, the alias ledger, memory figures.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use emily::ledger::Ledger;
use emily::{Array, Error, Worker};
use rustler::{Atom, Binary, Encoder, Env, NifResult, ResourceArc, Term};

use crate::atoms;
use crate::error::raise;
use crate::nif_ops::DtypeArg;
use crate::resources::{AliasRes, Tensor, TensorRes, WorkerArc};
use crate::worker::{submit, Reply};

/// Buffers aliased by BEAM binaries, each held (not donatable) until its last alias is gone.
pub static LEDGER: LazyLock<Ledger<Array>> = LazyLock::new(Ledger::new);

/// Bytes of MLX arrays held by live tensor handles (their nominal size).
static HANDLE_BYTES: AtomicUsize = AtomicUsize::new(0);
static HANDLES: AtomicUsize = AtomicUsize::new(0);
static BYTES_COPIED: AtomicU64 = AtomicU64::new(0);

pub fn account_handle(bytes: usize) -> usize {
    HANDLE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    HANDLES.fetch_add(1, Ordering::Relaxed);
    bytes
}

pub fn unaccount_handle(bytes: usize) {
    HANDLE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    HANDLES.fetch_sub(1, Ordering::Relaxed);
}

pub fn release_alias(key: usize, worker: &Arc<Worker>) {
    if let Some(holder) = LEDGER.release(key) {
        worker.release(holder);
    }
}

fn wrap(a: Array, w: &WorkerArc) -> Tensor {
    ResourceArc::new(TensorRes::new(a, w.worker.clone()))
}

/// Copies a binary into a new MLX array (native endianness; exact byte size).
#[rustler::nif]
pub fn from_binary(bin: Binary, shape: Vec<i64>, dtype: DtypeArg, w: WorkerArc) -> NifResult<Tensor> {
    let a = Array::from_bytes(bin.as_slice(), &shape, dtype.0).map_err(|e| {
        raise(
            "from_binary",
            e,
            &[format!("{} bytes", bin.len()), format!("shape={shape:?}"), format!("dtype={}", dtype.0)],
        )
    })?;
    BYTES_COPIED.fetch_add(bin.len() as u64, Ordering::Relaxed);
    Ok(wrap(a, &w))
}

#[rustler::nif]
pub fn shape(t: Tensor) -> Vec<i64> {
    t.array().shape()
}

#[rustler::nif]
pub fn dtype(env: Env, t: Tensor) -> Term {
    let name = t.array().dtype().name();
    rustler::types::atom::Atom::from_str(env, name).expect("atom").encode(env)
}

#[rustler::nif]
pub fn nbytes(t: Tensor) -> usize {
    t.array().nbytes()
}

/// Id of the worker the tensor belongs to.
#[rustler::nif]
pub fn tensor_worker(t: Tensor) -> u64 {
    t.worker.id()
}

/// Evaluates tensors on their worker; answers `{ref, {:ok, :ok}}`.
#[rustler::nif]
pub fn eval(env: Env, tensors: Vec<Tensor>, reference: Term) -> NifResult<Atom> {
    let Some(first) = tensors.first() else { return Ok(atoms::ok()) };
    let worker = first.worker.clone();
    let reply = Reply::new(env, reference);
    submit(
        "eval",
        &worker,
        Box::new(move |ctx| {
            let r = ctx.map_err(|e| e.clone()).and_then(|_| {
                let arrays: Vec<&Array> = tensors.iter().map(|t| t.array()).collect();
                emily::eval(&arrays)
            });
            reply.send(r.map(|_| atoms::ok()));
        }),
    )?;
    Ok(atoms::ok())
}

/// Evaluates `t` and answers `{ref, {:ok, binary}}` with a resource binary aliasing the MLX
/// buffer: no copy unless the array is not row-contiguous (then one contiguous copy is made
/// in MLX first).
#[rustler::nif]
pub fn to_binary(env: Env, t: Tensor, reference: Term) -> NifResult<Atom> {
    let worker = t.worker.clone();
    let reply = Reply::new(env, reference);
    let w2 = worker.clone();
    submit(
        "to_binary",
        &worker,
        Box::new(move |ctx| {
            let r = ctx.map_err(|e| e.clone()).and_then(|ctx| alias_of(t.array(), ctx.stream, &w2));
            reply.send_with(move |env| r.map(|alias| alias.make_binary(env, |a| a.bytes()).encode(env)));
        }),
    )?;
    Ok(atoms::ok())
}

/// On the worker: evaluates, makes contiguous if needed, and registers an alias.
fn alias_of(a: &Array, stream: emily::Stream, worker: &Arc<Worker>) -> Result<ResourceArc<AliasRes>, Error> {
    emily::eval(&[a])?;
    let contiguous;
    let a = if a.is_row_contiguous() {
        a
    } else {
        // MLX's `copy` of a view may share the view's buffer; `contiguous` always lays the
        // elements out in row-major order.
        contiguous = emily::ops::creation::contiguous(a, false, stream)?;
        emily::eval(&[&contiguous])?;
        if !contiguous.is_row_contiguous() {
            return Err(Error::runtime("to_binary: MLX did not produce a row-contiguous copy"));
        }
        BYTES_COPIED.fetch_add(contiguous.nbytes() as u64, Ordering::Relaxed);
        &contiguous
    };
    let bytes = a.bytes().ok_or_else(|| Error::runtime("to_binary: array has no readable data"))?;
    let (ptr, len) = (bytes.as_ptr(), bytes.len());
    let key = a.buffer_id();
    let mut clone_err = None;
    LEDGER.acquire(key, len, || match a.try_clone() {
        Ok(c) => c,
        Err(e) => {
            clone_err = Some(e);
            // Unreachable in practice (a clone is a refcount increment); keep the ledger
            // consistent by holding a fresh handle to the same data anyway.
            Array::from_bytes(&[], &[0], emily::Dtype::U8).expect("empty array")
        }
    });
    if let Some(e) = clone_err {
        release_alias(key, worker);
        return Err(e);
    }
    Ok(ResourceArc::new(AliasRes { key, ptr, len, worker: worker.clone() }))
}

/// `%{active:, peak:, cache:, limit:, handles:, handle_bytes:, aliased_buffers:, ...}`
#[rustler::nif]
pub fn memory_stats(env: Env) -> NifResult<Term> {
    let m = emily::memory::stats();
    let l = LEDGER.stats();
    let pairs: [(&str, u64); 13] = [
        ("active", m.active as u64),
        ("peak", m.peak as u64),
        ("cache", m.cache as u64),
        ("limit", m.limit as u64),
        ("handles", HANDLES.load(Ordering::Relaxed) as u64),
        ("handle_bytes", HANDLE_BYTES.load(Ordering::Relaxed) as u64),
        ("aliased_buffers", l.aliased_buffers as u64),
        ("aliased_bytes", l.aliased_bytes as u64),
        ("live_aliases", l.live_aliases as u64),
        ("aliases_created", l.aliases_created),
        ("aliases_released", l.aliases_released),
        ("donations_prevented", l.donations_prevented),
        ("bytes_copied", BYTES_COPIED.load(Ordering::Relaxed)),
    ];
    let mut map = Term::map_new(env);
    for (k, v) in pairs {
        let key = rustler::types::atom::Atom::from_str(env, k)?;
        map = map.map_put(key, v)?;
    }
    Ok(map)
}

#[rustler::nif]
pub fn reset_peak_memory() -> Atom {
    emily::memory::reset_peak();
    atoms::ok()
}

#[rustler::nif]
pub fn clear_cache() -> Atom {
    emily::memory::clear_cache();
    atoms::ok()
}

/// Sets MLX's memory limit in bytes; returns the previous limit.
#[rustler::nif]
pub fn set_memory_limit(bytes: u64) -> u64 {
    emily::memory::set_memory_limit(bytes as usize) as u64
}

/// Sets MLX's cache limit in bytes; returns the previous limit.
#[rustler::nif]
pub fn set_cache_limit(bytes: u64) -> u64 {
    emily::memory::set_cache_limit(bytes as usize) as u64
}
