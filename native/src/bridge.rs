//! The binary bridge: tensors in and out of the BEAM without copies.
//!
//! Out: `to_binary` answers with a resource binary whose bytes are the MLX buffer itself; the
//! ledger holds a second reference to the array while any such binary lives, so MLX never
//! donates (writes its output into) that buffer. In: `from_binary` of a large binary, and
//! `mmap`, wrap the BEAM binary or the file mapping as an MLX buffer the allocator does not
//! own, which MLX never donates either.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use emily::{Array, Error, Worker};
use rustler::{Atom, Binary, Encoder, Env, NifResult, OwnedEnv, ResourceArc, Term};

use crate::aliases::LEDGER;
use crate::atoms;
use crate::error::{argument_error, raise};
use crate::evaluate::{eval_inline, eval_then, in_context};
use crate::nif_ops::DtypeArg;
use crate::resources::{AliasRes, Tensor, TensorRes, WorkerArc};
use crate::worker::{reply_now, Reply};

/// Binaries at least this large are aliased by `from_binary` rather than copied.
pub const ALIAS_MIN: usize = 64 * 1024;

/// Bytes copied crossing the bridge (small or misaligned `from_binary` inputs, strided
/// arrays made contiguous for `to_binary`).
pub(crate) static BYTES_COPIED: AtomicU64 = AtomicU64::new(0);
/// Bytes of the binaries `to_binary` made: the sizes the BEAM charges to the receiving
/// processes' virtual binary heaps.
pub(crate) static BYTES_REPORTED: AtomicU64 = AtomicU64::new(0);
/// Foreign memory (BEAM binaries, file mappings) aliased by live MLX arrays.
pub(crate) static EXTERNAL_LIVE: AtomicUsize = AtomicUsize::new(0);
pub(crate) static EXTERNAL_BYTES: AtomicUsize = AtomicUsize::new(0);
pub(crate) static EXTERNAL_MADE: AtomicU64 = AtomicU64::new(0);

fn wrap(env: Env, a: Array, w: &WorkerArc) -> Tensor {
    TensorRes::arc(env, a, &w.worker)
}

/// Foreign bytes aliased by an MLX array: counted while alive.
struct Foreign<O> {
    owner: O,
    len: usize,
}

impl<O> Foreign<O> {
    fn new(owner: O, len: usize) -> Self {
        EXTERNAL_LIVE.fetch_add(1, Ordering::Relaxed);
        EXTERNAL_BYTES.fetch_add(len, Ordering::Relaxed);
        Foreign { owner, len }
    }
}

impl<O: AsRef<[u8]>> AsRef<[u8]> for Foreign<O> {
    fn as_ref(&self) -> &[u8] {
        self.owner.as_ref()
    }
}

impl<O> Drop for Foreign<O> {
    fn drop(&mut self) {
        EXTERNAL_LIVE.fetch_sub(1, Ordering::Relaxed);
        EXTERNAL_BYTES.fetch_sub(self.len, Ordering::Relaxed);
    }
}

/// A BEAM binary kept alive by a process-independent environment holding a copy of the
/// term. Copying the term into the environment makes a writable (append-optimised) binary
/// read-only first (`erts_emasculate_writable_binary`, possibly moving it), so the bytes are
/// read from the saved copy, after that, and never change or move again.
struct BeamBytes {
    _env: OwnedEnv,
    ptr: *const u8,
    len: usize,
}

// The environment is only dropped (enif_free_env is thread-safe); the bytes are immutable.
unsafe impl Send for BeamBytes {}

impl AsRef<[u8]> for BeamBytes {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

fn beam_bytes(term: Term) -> NifResult<BeamBytes> {
    let env = OwnedEnv::new();
    let saved = env.save(term);
    let (ptr, len) = env.run(|e| saved.load(e).decode::<Binary>().map(|b| (b.as_slice().as_ptr(), b.len())))?;
    Ok(BeamBytes { _env: env, ptr, len })
}

/// A new MLX array with the bytes of a binary (native endianness; exact byte size). Binaries
/// of at least 64 KiB are aliased, not copied (where MLX's allocator allows it).
#[rustler::nif]
pub fn from_binary<'a>(
    env: Env<'a>,
    data: Term<'a>,
    shape: Vec<i64>,
    dtype: DtypeArg,
    w: WorkerArc,
) -> NifResult<Tensor> {
    let Ok(bin) = Binary::from_term(data) else {
        return Err(argument_error(format!(
            "from_binary: expected a binary (whole bytes) (inputs: shape={shape:?}, dtype={})",
            dtype.0
        )));
    };
    let len = bin.len();
    let inputs = || [format!("{len} bytes"), format!("shape={shape:?}"), format!("dtype={}", dtype.0)];
    if len >= ALIAS_MIN && emily::external_aliasing() {
        let owner = Foreign::new(beam_bytes(data)?, len);
        let (a, aliased) = Array::from_owner(owner, &shape, dtype.0).map_err(|e| raise("from_binary", e, &inputs()))?;
        if aliased {
            EXTERNAL_MADE.fetch_add(1, Ordering::Relaxed);
        } else {
            BYTES_COPIED.fetch_add(len as u64, Ordering::Relaxed);
        }
        return Ok(wrap(env, a, &w));
    }
    let a = Array::from_bytes(bin.as_slice(), &shape, dtype.0).map_err(|e| raise("from_binary", e, &inputs()))?;
    BYTES_COPIED.fetch_add(len as u64, Ordering::Relaxed);
    Ok(wrap(env, a, &w))
}

/// Maps `nbytes(shape, dtype)` bytes of the file at `path` from `offset` as a new MLX array:
/// no copy (the pages are read on first use) under the file's read lease, the mapping kept
/// until MLX frees the array (see `emily::mapped`: a change to the file copies the mapping
/// first; without a lease the region is read). Falls back to one copy when the data is not
/// 8-byte aligned in memory (offset % 8 != 0).
#[rustler::nif(schedule = "DirtyIo")]
pub fn mmap_file(
    env: Env,
    path: String,
    offset: u64,
    shape: Vec<i64>,
    dtype: DtypeArg,
    w: WorkerArc,
) -> NifResult<Tensor> {
    let inputs = || {
        [format!("path={path:?}"), format!("offset={offset}"), format!("shape={shape:?}"), format!("dtype={}", dtype.0)]
    };
    let fail = |e: Error| raise("mmap", e, &inputs());
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| usize::try_from(d).ok().and_then(|d| acc.checked_mul(d)))
        .and_then(|n| n.checked_mul(dtype.0.size()))
        .ok_or_else(|| fail(Error::argument("invalid shape")))?;
    let region = emily::mapped::open(std::path::Path::new(&path), offset, n).map_err(fail)?;
    if n == 0 {
        let a = Array::from_bytes(&[], &shape, dtype.0).map_err(fail)?;
        return Ok(wrap(env, a, &w));
    }
    let (a, aliased) = Array::from_owner(Foreign::new(region, n), &shape, dtype.0).map_err(fail)?;
    if aliased {
        EXTERNAL_MADE.fetch_add(1, Ordering::Relaxed);
    } else {
        BYTES_COPIED.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(wrap(env, a, &w))
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

/// Address of the first element of an evaluated tensor, `nil` before evaluation (tests and
/// diagnostics: with `binary_ptr/1` it shows whether bytes were copied).
#[rustler::nif]
pub fn data_ptr(t: Tensor) -> Option<u64> {
    let a = t.array();
    if !a.is_available() || a.nbytes() == 0 {
        return None;
    }
    Some(a.data_addr() as u64)
}

/// Address of a binary's first byte (see `data_ptr/1`).
#[rustler::nif]
pub fn binary_ptr(b: Binary) -> u64 {
    b.as_slice().as_ptr() as u64
}

/// Whether a tensor has been evaluated.
#[rustler::nif]
pub fn evaluated(t: Tensor) -> bool {
    t.array().is_available()
}

/// Evaluates `t` and answers `{ref, {:ok, binary}}` with a resource binary aliasing the MLX
/// buffer: no copy unless the array is a strided view (then MLX makes one contiguous copy).
#[rustler::nif]
pub fn to_binary<'a>(env: Env<'a>, t: Tensor, reference: Term<'a>) -> NifResult<Atom> {
    let worker = t.worker.clone();
    // In the caller's thread when cheap; a strided view larger than a cheap graph is copied
    // on the worker.
    let inline = eval_inline(&worker, std::slice::from_ref(&t), |ctx| match ctx {
        Err(e) => Some(Err(e)),
        Ok(ctx) if t.array().is_row_contiguous() || t.array().size() <= INLINE_COPY_ELEMENTS => {
            Some(alias_of(t.array(), copy_stream(t.array(), ctx), &worker))
        }
        Ok(_) => None,
    });
    if let Some(r) = inline {
        let r = r.map(|alias| binary_term(env, alias));
        reply_now(env, reference, r.map_err(|e| in_context("to_binary", e, &[t.describe()])));
        return Ok(atoms::ok());
    }
    let inputs = [t.describe()];
    let reply = Reply::new(env, reference);
    let (t2, w2, inputs2) = (t.clone(), worker.clone(), inputs.clone());
    eval_then(
        "to_binary",
        worker,
        vec![t],
        Box::new(move |ctx| {
            let r = ctx
                .and_then(|ctx| alias_of(t2.array(), copy_stream(t2.array(), ctx), &w2))
                .map_err(|e| in_context("to_binary", e, &inputs2));
            drop(t2);
            reply.send_with(move |env| r.map(|alias| binary_term(env, alias)));
        }),
    )
    .map_err(|e| raise("to_binary", e, &inputs))?;
    Ok(atoms::ok())
}

/// The resource binary over an alias's bytes (counted as reported to the BEAM).
fn binary_term(env: Env<'_>, alias: ResourceArc<AliasRes>) -> Term<'_> {
    BYTES_REPORTED.fetch_add(alias.len as u64, Ordering::Relaxed);
    alias.make_binary(env, |a| a.bytes()).encode(env)
}

/// Most elements of a strided view `to_binary` copies in the caller's thread.
const INLINE_COPY_ELEMENTS: usize = 1 << 18;

/// The stream a contiguous copy for `to_binary` is made on: the worker's, except float64 on
/// a GPU worker (MLX's GPU has no float64): its CPU stream.
fn copy_stream(a: &Array, ctx: &emily::Ctx) -> emily::Stream {
    if a.dtype() == emily::Dtype::F64 {
        ctx.cpu_stream
    } else {
        ctx.stream
    }
}

/// On the worker, after evaluation: makes the array contiguous if needed and registers an
/// alias of its buffer.
fn alias_of(a: &Array, stream: emily::Stream, worker: &Arc<Worker>) -> Result<ResourceArc<AliasRes>, Error> {
    if !a.is_available() {
        return Err(Error::runtime("the array was not evaluated"));
    }
    let contiguous;
    let a = if a.is_row_contiguous() {
        a
    } else {
        // MLX's `copy` of a view may share the view's buffer; `contiguous` always lays the
        // elements out in row-major order.
        contiguous = emily::ops::creation::contiguous(a, false, stream)?;
        emily::eval(&[&contiguous])?;
        if !contiguous.is_row_contiguous() {
            return Err(Error::runtime("MLX did not produce a row-contiguous copy"));
        }
        BYTES_COPIED.fetch_add(contiguous.nbytes() as u64, Ordering::Relaxed);
        &contiguous
    };
    let bytes = a.bytes().ok_or_else(|| Error::runtime("the array has no readable data"))?;
    let (ptr, len) = (bytes.as_ptr(), bytes.len());
    let key = a.buffer_id();
    let holder = a.try_clone()?;
    LEDGER.acquire(key, len, move || holder);
    Ok(ResourceArc::new(AliasRes { key, ptr, len, worker: worker.clone() }))
}
