//! Evaluation on a worker, across workers.
//!
//! A tensor built on one worker's stream may be an input of an op built on another's (a
//! process using its own worker through `Emily.Stream` reads a tensor made elsewhere). MLX
//! 0.32 runs a stream's nodes only on the thread that created the stream, so before
//! evaluating, the job walks the graph (`emily::scan_and_eval`); unevaluated nodes on other
//! streams are evaluated first by their own workers, then the job runs again. Nothing
//! blocks: each hop is a queued job, and the continuation resubmits the original job.
//!
//! Every worker job that evaluates should go through [`eval_then`].
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use emily::{Ctx, Error, Worker};
use rustler::{Atom, Encoder, Env, NifResult, ResourceArc, Term};

use crate::aliases;
use crate::atoms;
use crate::error::raise;
use crate::resources::{Tensor, TensorRes};
use crate::worker::{reply_now, Reply};

/// Stream index (MLX numbers streams process-wide) -> the worker that owns it.
static STREAMS: LazyLock<Mutex<HashMap<i32, Weak<Worker>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Most worker-to-worker hops one evaluation may take (a graph alternating between workers
/// takes one per alternation).
const MAX_HOPS: u32 = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records the streams of a new worker.
pub fn register_worker(w: &Arc<Worker>) {
    let mut m = lock(&STREAMS);
    m.retain(|_, w| w.strong_count() > 0);
    m.insert(w.stream().index, Arc::downgrade(w));
    m.insert(w.cpu_stream().index, Arc::downgrade(w));
}

fn worker_of(stream: i32) -> Option<Arc<Worker>> {
    lock(&STREAMS).get(&stream).and_then(Weak::upgrade)
}

/// What runs once the tensors are evaluated: on the worker's thread with its context, or
/// (anywhere) with the error that prevented it.
pub type Then = Box<dyn FnOnce(Result<&Ctx, Error>) + Send>;

struct EvalJob {
    op: &'static str,
    worker: Arc<Worker>,
    tensors: Vec<Tensor>,
    then: Then,
    hops: u32,
}

/// Evaluates `tensors` on `worker` (their inputs from other workers first, on those), then
/// runs `then` there. Fails only when `worker` refuses the job (queue full, shut down);
/// every later failure goes to `then`.
pub fn eval_then(op: &'static str, worker: Arc<Worker>, tensors: Vec<Tensor>, then: Then) -> Result<(), Error> {
    submit(EvalJob { op, worker, tensors, then, hops: 0 }).map_err(|(_job, e)| e)
}

/// Evaluates `tensors` in the calling thread, standing in for their worker
/// ([`Worker::try_inline`]), when the worker is idle and the graph is cheap and has no node
/// of another worker; then runs `then` there, still standing in. `None` when nothing was
/// evaluated or `then` declined (returned `None`): go on with [`eval_then`], which finds
/// whatever was evaluated already done.
///
/// This saves the two thread hops of a queued job (to the worker and back to the caller),
/// most of the cost of a small op's round trip.
pub fn eval_inline<R>(
    worker: &Arc<Worker>,
    tensors: &[Tensor],
    then: impl FnOnce(Result<&Ctx, Error>) -> Option<R>,
) -> Option<R> {
    worker
        .try_inline(|ctx| {
            let own = [ctx.stream.index, ctx.cpu_stream.index];
            let arrays: Vec<&emily::Array> = tensors.iter().map(|t| t.array()).collect();
            match emily::eval_if_cheap(&arrays, &own, aliases::LEDGER.live_aliases() > 0) {
                Err(e) => then(Err(e)),
                Ok(scan) if scan.evaluated => {
                    aliases::note_donation_candidates(&scan.candidates);
                    then(Ok(ctx))
                }
                Ok(_) => None,
            }
        })
        .flatten()
}

fn submit(job: EvalJob) -> Result<(), (EvalJob, Error)> {
    let w = job.worker.clone();
    let slot = Arc::new(Mutex::new(Some(job)));
    let inner = slot.clone();
    match w.submit(Box::new(move |ctx| {
        let job = lock(&inner).take();
        if let Some(job) = job {
            run(job, ctx);
        }
    })) {
        Ok(()) => Ok(()),
        Err(e) => {
            let job = lock(&slot).take().expect("a refused job is handed back");
            Err((job, e))
        }
    }
}

/// Submits, or answers `then` with the refusal.
fn submit_or_fail(job: EvalJob) {
    if let Err((job, e)) = submit(job) {
        (job.then)(Err(e));
    }
}

fn run(job: EvalJob, ctx: Result<&Ctx, Error>) {
    let ctx = match ctx {
        Ok(c) => c,
        Err(e) => return (job.then)(Err(e)),
    };
    let own = [ctx.stream.index, ctx.cpu_stream.index];
    let want_candidates = aliases::LEDGER.live_aliases() > 0;
    let scan = {
        let arrays: Vec<&emily::Array> = job.tensors.iter().map(|t| t.array()).collect();
        emily::scan_and_eval(&arrays, &own, want_candidates)
    };
    match scan {
        Err(e) => (job.then)(Err(e)),
        Ok(scan) if scan.evaluated => {
            aliases::note_donation_candidates(&scan.candidates);
            (job.then)(Ok(ctx))
        }
        Ok(scan) => defer(job, scan.foreign),
    }
}

/// Evaluates the foreign nodes on their workers, then runs `job` again.
fn defer(job: EvalJob, foreign: Vec<(emily::Array, emily::Stream)>) {
    if job.hops >= MAX_HOPS {
        let e = Error::runtime(format!("{}: the graph crosses workers more than {MAX_HOPS} times", job.op));
        return (job.then)(Err(e));
    }
    let mut groups: Vec<(Arc<Worker>, Vec<Tensor>)> = Vec::new();
    for (a, stream) in foreign {
        let Some(w) = worker_of(stream.index) else {
            let e = Error::runtime(format!(
                "{}: an input was built on stream {} whose worker is shut down; it can no longer be evaluated",
                job.op, stream.index
            ));
            return (job.then)(Err(e));
        };
        let t = ResourceArc::new(TensorRes::internal(a, w.clone()));
        match groups.iter_mut().find(|(g, _)| Arc::ptr_eq(g, &w)) {
            Some((_, v)) => v.push(t),
            None => groups.push((w, vec![t])),
        }
    }
    let waiting = Arc::new(Waiting {
        left: AtomicUsize::new(groups.len()),
        job: Mutex::new(Some(EvalJob { hops: job.hops + 1, ..job })),
        error: Mutex::new(None),
    });
    let op = lock(&waiting.job).as_ref().map_or("eval", |j| j.op);
    let hops = lock(&waiting.job).as_ref().map_or(0, |j| j.hops);
    for (w, tensors) in groups {
        let wt = waiting.clone();
        submit_or_fail(EvalJob {
            op,
            worker: w,
            tensors,
            hops,
            then: Box::new(move |r| {
                if let Err(e) = r {
                    lock(&wt.error).get_or_insert(e);
                }
                wt.one_done();
            }),
        });
    }
}

struct Waiting {
    left: AtomicUsize,
    job: Mutex<Option<EvalJob>>,
    error: Mutex<Option<Error>>,
}

impl Waiting {
    fn one_done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(job) = lock(&self.job).take() else { return };
        match lock(&self.error).take() {
            Some(e) => (job.then)(Err(e)),
            None => submit_or_fail(job),
        }
    }
}

/// `op: message (inputs: f32[2][3])`, keeping the kind.
pub(crate) fn in_context(op: &str, e: Error, inputs: &[String]) -> Error {
    Error { kind: e.kind, message: format!("{op}: {} (inputs: {})", e.message, inputs.join(", ")) }
}

/// Starts evaluating tensors on their worker and returns at once (MLX's `async_eval`): a
/// later `eval` or read finds them done, or waits for them; an error surfaces there.
#[rustler::nif]
pub fn async_eval(tensors: Vec<Tensor>) -> NifResult<Atom> {
    let Some(first) = tensors.first() else {
        return Ok(atoms::ok());
    };
    let worker = first.worker.clone();
    let inputs = describe_all(&tensors);
    eval_then("async_eval", worker, tensors, Box::new(|_| ())).map_err(|e| raise("async_eval", e, &inputs))?;
    Ok(atoms::ok())
}

/// Evaluates tensors (inputs built on other workers first, on those); answers
/// `{ref, {:ok, :ok}}` or `{ref, {:error, {kind, message}}}`.
#[rustler::nif]
pub fn eval<'a>(env: Env<'a>, tensors: Vec<Tensor>, reference: Term<'a>) -> NifResult<Atom> {
    let Some(first) = tensors.first() else {
        let _ = env.send(&env.pid(), (reference, (atoms::ok(), atoms::ok())));
        return Ok(atoms::ok());
    };
    let worker = first.worker.clone();
    if let Some(r) = eval_inline(&worker, &tensors, |ctx| Some(ctx.map(|_| ()))) {
        let r = r.map(|_| atoms::ok().encode(env));
        reply_now(env, reference, r.map_err(|e| in_context("eval", e, &describe_all(&tensors))));
        return Ok(atoms::ok());
    }
    let inputs = describe_all(&tensors);
    let reply = Reply::new(env, reference);
    let inputs2 = inputs.clone();
    eval_then(
        "eval",
        worker,
        tensors,
        Box::new(move |ctx| reply.send(ctx.map(|_| atoms::ok()).map_err(|e| in_context("eval", e, &inputs2)))),
    )
    .map_err(|e| raise("eval", e, &inputs))?;
    Ok(atoms::ok())
}

pub(crate) fn describe_all(tensors: &[Tensor]) -> Vec<String> {
    tensors.iter().map(|t| t.describe()).collect()
}
