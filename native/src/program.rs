//! Program NIFs (Emily.Compiler's native and fused lanes): capture a lazy MLX graph built on
//! placeholders into a program, then replay it in one worker job per call.
//!
//! Capture happens in the calling process (it only reads graphs); `program_run` queues one
//! job on the program's worker, which replays every step, runs `while`/`cond` sub-programs,
//! evaluates the outputs and answers `{ref, {:ok, [tensor]}}`.
use std::sync::{Arc, Mutex, Weak};

use emily::program::{placeholder, Builder, Clause, Program};
use emily::{Array, Error, Worker};
use rustler::{Atom, Encoder, Env, NifResult, ResourceArc, Term};

use crate::atoms;
use crate::error::{argument_error, emily_error, raise};
use crate::nif_ops::DtypeArg;
use crate::resources::{Tensor, TensorRes, WorkerArc};
use crate::worker::{reply_now, submit, Reply};

/// A program being captured (used by one process; the mutex makes misuse safe).
pub struct BuilderRes {
    builder: Mutex<Option<Builder>>,
}

#[rustler::resource_impl]
impl rustler::Resource for BuilderRes {}

/// A captured program and the worker whose stream its primitives carry. Dropped on that
/// worker: its fused functions live in the worker thread's compile cache.
///
/// The worker is held weakly: cached programs must not keep a worker (an OS thread) alive
/// once nothing else uses it. A program whose worker is gone cannot run.
pub struct ProgramRes {
    program: Option<Arc<Program>>,
    worker: Weak<Worker>,
    pub worker_id: u64,
}

#[rustler::resource_impl]
impl rustler::Resource for ProgramRes {}

impl Drop for ProgramRes {
    fn drop(&mut self) {
        if let Some(p) = self.program.take() {
            // If the worker is gone or full, drop here: erasing from another thread's cache
            // is a no-op, and fused-function ids are never reused.
            if let Some(w) = self.worker.upgrade() {
                let _ = w.submit(Box::new(move |_| drop(p)));
            }
        }
    }
}

impl ProgramRes {
    fn program(&self) -> &Arc<Program> {
        self.program.as_ref().expect("program used after drop")
    }

    fn alive(&self) -> bool {
        self.worker.strong_count() > 0
    }
}

/// The programs of one compiled function, one per worker (primitives carry their stream).
/// Lives as long as the function holding it.
pub struct ProgramSetRes {
    programs: Mutex<std::collections::HashMap<u64, ProgramArc>>,
}

#[rustler::resource_impl]
impl rustler::Resource for ProgramSetRes {}

type BuilderArc = ResourceArc<BuilderRes>;
type ProgramArc = ResourceArc<ProgramRes>;

fn with_builder<T>(op: &str, b: &BuilderArc, f: impl FnOnce(&mut Builder) -> emily::Result<T>) -> NifResult<T> {
    let mut guard = b.builder.lock().unwrap_or_else(|p| p.into_inner());
    let builder = guard.as_mut().ok_or_else(|| argument_error(format!("{op}: the program builder is finished")))?;
    f(builder).map_err(|e| raise(op, e, &[]))
}

fn arrays(ts: &[Tensor]) -> Vec<&Array> {
    ts.iter().map(|t| t.array()).collect()
}

/// The program as a resource of worker `w`, whose thread replays it: refused (an
/// ArgumentError naming the stream) when a node belongs to another worker's stream.
fn wrap_program(op: &str, p: Program, w: &WorkerArc) -> NifResult<ProgramArc> {
    let own = [w.worker.stream().index, w.worker.cpu_stream().index];
    if let Some(s) = p.foreign_stream(&own) {
        return Err(argument_error(format!(
            "{op}: a node of the graph runs on stream {s}, which is not one of the program's worker ({own:?}): \
             a program replays on one worker's thread"
        )));
    }
    Ok(ResourceArc::new(ProgramRes {
        program: Some(Arc::new(p)),
        worker: Arc::downgrade(&w.worker),
        worker_id: w.worker.id(),
    }))
}

/// An array with `shape` and `dtype` and no data: a program input while capturing. Anything
/// built on it can be captured but never evaluated.
#[rustler::nif]
pub fn program_placeholder(shape: Vec<i64>, dtype: DtypeArg, w: WorkerArc) -> NifResult<Tensor> {
    let a = placeholder(&shape, dtype.0)
        .map_err(|e| raise("program_placeholder", e, &[format!("shape={shape:?}"), format!("dtype={}", dtype.0)]))?;
    Ok(ResourceArc::new(TensorRes::new(a, w.worker.clone())))
}

#[rustler::nif]
pub fn program_builder() -> NifResult<BuilderArc> {
    let b = Builder::new().map_err(|e| raise("program_builder", e, &[]))?;
    Ok(ResourceArc::new(BuilderRes { builder: Mutex::new(Some(b)) }))
}

/// Declares program inputs (in order); returns their slots.
#[rustler::nif]
pub fn program_inputs(b: BuilderArc, inputs: Vec<Tensor>) -> NifResult<Vec<i64>> {
    with_builder("program_inputs", &b, |bl| bl.inputs(&arrays(&inputs)))
}

/// Captures what computes `tensors` into a tape step; returns their slots.
#[rustler::nif(schedule = "DirtyCpu")]
pub fn program_materialize(b: BuilderArc, tensors: Vec<Tensor>) -> NifResult<Vec<i64>> {
    with_builder("program_materialize", &b, |bl| bl.materialize(&arrays(&tensors)))
}

/// Adds a while step: `cond` and `body` take the state; `outs` are placeholders naming the
/// final state.
#[rustler::nif]
pub fn program_while(
    b: BuilderArc,
    cond: ProgramArc,
    body: ProgramArc,
    state: Vec<i64>,
    outs: Vec<Tensor>,
) -> NifResult<Atom> {
    with_builder("program_while", &b, |bl| bl.while_loop(cond.program(), body.program(), &state, &arrays(&outs)))?;
    Ok(atoms::ok())
}

/// Adds a cond step. `clauses` is a list of `{pred_program | nil, pred_slots, body_program,
/// body_slots}`; only the last clause has no predicate.
#[rustler::nif]
#[allow(clippy::type_complexity)]
pub fn program_cond(
    b: BuilderArc,
    clauses: Vec<(Term, Vec<i64>, ProgramArc, Vec<i64>)>,
    outs: Vec<Tensor>,
) -> NifResult<Atom> {
    let mut preds: Vec<Option<ProgramArc>> = Vec::with_capacity(clauses.len());
    for (p, _, _, _) in &clauses {
        if p.is_atom() && p.decode::<Atom>()? == atoms::nil() {
            preds.push(None);
        } else {
            preds.push(Some(p.decode::<ProgramArc>()?));
        }
    }
    let cl: Vec<Clause<'_>> = clauses
        .iter()
        .zip(preds.iter())
        .map(|((_, pin, body, bin), pred)| {
            (pred.as_ref().map(|p| (&**p.program(), &pin[..])), (&**body.program(), &bin[..]))
        })
        .collect();
    with_builder("program_cond", &b, |bl| bl.cond(&cl, &arrays(&outs)))?;
    Ok(atoms::ok())
}

/// Captures the outputs and returns the program, bound to `w` (whose stream the graph was
/// built with).
#[rustler::nif(schedule = "DirtyCpu")]
pub fn program_finish(b: BuilderArc, outputs: Vec<Tensor>, w: WorkerArc) -> NifResult<ProgramArc> {
    let p = with_builder("program_finish", &b, |bl| bl.finish(&arrays(&outputs)))?;
    *b.builder.lock().unwrap_or_else(|p| p.into_inner()) = None;
    wrap_program("program_finish", p, &w)
}

/// One-shot capture: the graph from `inputs` (placeholders) to `outputs`.
#[rustler::nif(schedule = "DirtyCpu")]
pub fn program_capture(inputs: Vec<Tensor>, outputs: Vec<Tensor>, w: WorkerArc) -> NifResult<ProgramArc> {
    let capture = || -> emily::Result<Program> {
        let mut b = Builder::new()?;
        b.inputs(&arrays(&inputs))?;
        b.finish(&arrays(&outputs))
    };
    let p = capture().map_err(|e| raise("program_capture", e, &[]))?;
    wrap_program("program_capture", p, &w)
}

/// Replays `program` on `inputs` in one job on its worker (`fused`: through
/// mlx::core::compile); answers `{ref, {:ok, [tensor]}}` with evaluated outputs.
#[rustler::nif]
pub fn program_run<'a>(
    env: Env<'a>,
    program: ProgramArc,
    inputs: Vec<Tensor>,
    fused: bool,
    reference: Term<'a>,
) -> NifResult<Atom> {
    let p = program.program().clone();
    if inputs.len() != p.n_inputs() {
        return Err(argument_error(format!(
            "program_run: the program takes {} inputs, got {}",
            p.n_inputs(),
            inputs.len()
        )));
    }
    let worker =
        program.worker.upgrade().ok_or_else(|| emily_error("program_run: the program's worker is gone".into()))?;
    if cheap_to_run_inline(&p, &inputs, fused) {
        if let Some(r) = worker.try_inline(|_ctx| p.run(&arrays(&inputs), false)) {
            reply_now(env, reference, r.map(|outs| tensors_term(env, outs, &worker)));
            return Ok(atoms::ok());
        }
    }
    let reply = Reply::new(env, reference);
    let w2 = worker.clone();
    submit(
        "program_run",
        &worker,
        Box::new(move |ctx| {
            let r: Result<Vec<Array>, Error> = ctx.map_err(|e| e.clone()).and_then(|_| p.run(&arrays(&inputs), fused));
            drop(inputs);
            reply.send_with(move |env| r.map(|outs| tensors_term(env, outs, &w2)));
        }),
    )?;
    Ok(atoms::ok())
}

/// A program's outputs as tensors of its worker.
fn tensors_term<'a>(env: Env<'a>, outs: Vec<Array>, w: &Arc<Worker>) -> Term<'a> {
    outs.into_iter().map(|a| ResourceArc::new(TensorRes::new(a, w.clone()))).collect::<Vec<Tensor>>().encode(env)
}

/// Most a program's last run may have taken (replay and evaluation) for the next run to go
/// in the caller's thread.
const INLINE_PROGRAM_NS: u64 = 100_000;

/// Whether a run of `p` may happen in the caller's thread, standing in for its worker
/// (`Worker::try_inline`): unfused (compiled functions live in the worker thread's cache),
/// without `while` or `cond` (their cost depends on the data), without factorizations,
/// sorts, FFTs or convolutions (the caller runs MLX's kernels itself, on a dirty
/// scheduler's smaller stack, and their cost may vary), on evaluated inputs (lazy ones
/// would add work of unknown cost), and quick the last time it ran, which was on the
/// worker (a program's inputs have fixed shapes and types, so its cost does not change).
fn cheap_to_run_inline(p: &Program, inputs: &[Tensor], fused: bool) -> bool {
    let st = p.stats();
    !fused
        && st.whiles == 0
        && st.conds == 0
        && st.heavy == 0
        && st.last_eval_ns > 0
        && st.last_replay_ns + st.last_eval_ns < INLINE_PROGRAM_NS
        && inputs.iter().all(|t| t.array().is_available())
}

/// Indices of `tensors` that belong to a worker other than `w` and are not evaluated: they
/// must be evaluated on their own worker before `w` can use them.
#[rustler::nif]
pub fn program_foreign_pending(tensors: Vec<Tensor>, w: WorkerArc) -> Vec<usize> {
    let id = w.worker.id();
    tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.worker.id() != id && !t.array().is_available())
        .map(|(i, _)| i)
        .collect()
}

#[rustler::nif]
pub fn program_set_new() -> ResourceArc<ProgramSetRes> {
    ResourceArc::new(ProgramSetRes { programs: Mutex::new(Default::default()) })
}

/// The program of `set` for worker `w`, or nil.
#[rustler::nif]
pub fn program_set_get(env: Env, set: ResourceArc<ProgramSetRes>, w: WorkerArc) -> Term {
    let map = set.programs.lock().unwrap_or_else(|p| p.into_inner());
    match map.get(&w.worker.id()) {
        Some(p) => p.encode(env),
        None => atoms::nil().encode(env),
    }
}

/// Stores `program` in `set` under its worker (replacing any); forgets the programs of
/// workers that are gone.
#[rustler::nif]
pub fn program_set_put(set: ResourceArc<ProgramSetRes>, program: ProgramArc) -> Atom {
    let mut map = set.programs.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, p| p.alive());
    map.insert(program.worker_id, program);
    atoms::ok()
}

/// How many programs `set` holds (tests).
#[rustler::nif]
pub fn program_set_size(set: ResourceArc<ProgramSetRes>) -> usize {
    set.programs.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// The MLX primitive names of the program's nodes (sub-programs included).
#[rustler::nif]
pub fn program_primitives(program: ProgramArc) -> Vec<String> {
    program.program().primitives()
}

/// `%{inputs:, outputs:, steps:, tapes:, nodes:, constants:, whiles:, conds:, heavy:,
/// worker:, last_replay_us:, last_eval_us:}`
#[rustler::nif]
pub fn program_stats(env: Env, program: ProgramArc) -> NifResult<Term> {
    let p = program.program();
    let s = p.stats();
    let pairs: [(&str, u64); 12] = [
        ("inputs", p.n_inputs() as u64),
        ("outputs", p.n_outputs() as u64),
        ("steps", s.steps as u64),
        ("tapes", s.tapes as u64),
        ("nodes", s.nodes as u64),
        ("constants", s.constants as u64),
        ("whiles", s.whiles as u64),
        ("conds", s.conds as u64),
        ("heavy", s.heavy as u64),
        ("worker", program.worker_id),
        ("last_replay_us", s.last_replay_ns / 1000),
        ("last_eval_us", s.last_eval_ns / 1000),
    ];
    crate::atoms::atom_map(env, pairs)
}
