//! Worker NIFs and the reply path from worker threads to the calling process.
use std::sync::Arc;

use emily::{Device, Error, InfoValue, Worker};
use rustler::{Atom, Encoder, Env, LocalPid, NifResult, OwnedEnv, ResourceArc, Term};

use crate::atoms;
use crate::error::{emily_error, kind_atom, raise};
use crate::resources::{WorkerArc, WorkerRes};

/// Where a worker job sends its answer: `{ref, {:ok, value}}` or `{ref, {:error, {kind, msg}}}`.
pub struct Reply {
    pid: LocalPid,
    env: OwnedEnv,
    reference: rustler::env::SavedTerm,
}

impl Reply {
    pub fn new(env: Env, reference: Term) -> Reply {
        let owned = OwnedEnv::new();
        let saved = owned.save(reference);
        Reply { pid: env.pid(), env: owned, reference: saved }
    }

    /// Sends the value built by `f` (in the message's environment) or the error.
    pub fn send_with<F>(mut self, f: F)
    where
        F: for<'a> FnOnce(Env<'a>) -> Result<Term<'a>, Error>,
    {
        let reference = self.reference;
        let _ = self.env.send_and_clear(&self.pid, move |env| {
            let r = reference.load(env);
            answer(env, r, f(env))
        });
    }

    pub fn send<T: Encoder>(self, r: Result<T, Error>) {
        self.send_with(move |env| r.map(|v| v.encode(env)))
    }
}

/// Answers the calling process at once, as a worker job would: sends
/// `{ref, {:ok, value}}` or `{ref, {:error, {kind, msg}}}` to itself (for work done in the
/// NIF call, so that the Elixir side awaits the same message either way).
pub fn reply_now<'a>(env: Env<'a>, reference: Term<'a>, r: Result<Term<'a>, Error>) {
    let _ = env.send(&env.pid(), answer(env, reference, r));
}

/// `{ref, {:ok, value}}` or `{ref, {:error, {kind, msg}}}`.
fn answer<'a>(env: Env<'a>, reference: Term<'a>, r: Result<Term<'a>, Error>) -> Term<'a> {
    match r {
        Ok(v) => (reference, (atoms::ok(), v)).encode(env),
        Err(e) => (reference, (atoms::error(), (kind_atom(e.kind), e.message))).encode(env),
    }
}

/// Queues `job` on `w`, raising at once when the queue is full or closed. A job that
/// evaluates should use `crate::evaluate::eval_then` instead (inputs from other workers).
#[allow(dead_code)]
pub fn submit(op: &str, w: &Arc<Worker>, job: emily::worker::Job) -> NifResult<()> {
    w.submit(job).map_err(|e| raise(op, e, &[]))
}

fn device_of(op: &str, a: Atom) -> NifResult<Device> {
    if a == atoms::cpu() {
        Ok(Device::Cpu)
    } else if a == atoms::gpu() {
        Ok(Device::Gpu)
    } else {
        Err(crate::error::argument_error(format!("{op}: unknown device {a:?}; expected :cpu or :gpu")))
    }
}

/// Starts a worker thread owning a new stream on `device`, with a queue of `limit` jobs.
/// A dirty NIF: making a stream may wait for running evaluations (see
/// `stream_table_lock` in the C++ shim).
#[rustler::nif(schedule = "DirtyIo")]
pub fn worker_new(device: Atom, limit: u64) -> NifResult<WorkerArc> {
    let device = device_of("worker_new", device)?;
    if !device.is_available() {
        return Err(emily_error(format!("worker_new: MLX has no {} device in this build", device.name())));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX).clamp(1, 1 << 20);
    let w = Arc::new(Worker::start(device, limit).map_err(|e| raise("worker_new", e, &[]))?);
    crate::evaluate::register_worker(&w);
    Ok(ResourceArc::new(WorkerRes { worker: w }))
}

/// Stops a worker: queued jobs are answered with `{:error, {:closed, _}}`.
#[rustler::nif(schedule = "DirtyIo")]
pub fn worker_shutdown(w: WorkerArc) -> Atom {
    w.worker.shutdown();
    atoms::ok()
}

/// `{id, device, queued, queue_limit, running?}`
#[rustler::nif]
pub fn worker_info(w: WorkerArc) -> (u64, Atom, usize, usize, bool, bool) {
    let wk = &w.worker;
    let dev = match wk.device() {
        Device::Cpu => atoms::cpu(),
        Device::Gpu => atoms::gpu(),
    };
    (wk.id(), dev, wk.queued(), wk.queue_limit(), wk.is_running(), wk.is_busy())
}

#[rustler::nif]
pub fn device_available(device: Atom) -> NifResult<bool> {
    Ok(device_of("device_available", device)?.is_available())
}

/// MLX's description of `device` as a map with atom keys (`:device_name`,
/// `:architecture`, `:total_memory`, ...); integers stay integers.
#[rustler::nif]
pub fn device_info(env: Env, device: Atom) -> NifResult<Term> {
    let info = device_of("device_info", device)?.info().map_err(|e| raise("device_info", e, &[]))?;
    let pairs = info.into_iter().map(|(k, v)| {
        let value = match v {
            InfoValue::Int(n) => n.encode(env),
            InfoValue::Text(t) => t.encode(env),
        };
        (k, value)
    });
    crate::atoms::atom_map(env, pairs)
}

/// Puts `name=value` into the process environment, the C library's that MLX reads
/// (`os:putenv/2` changes only the VM's own copy), unless `name` is set there already;
/// returns the value in effect. Only MLX's own variables (`MLX_*`): MLX reads
/// `MLX_ENABLE_TF32` at its first float32 matmul and `MLX_PTX_CACHE_DIR` at its first
/// CUDA kernel compilation, both after the application has started.
#[rustler::nif]
pub fn mlx_env_default(name: String, value: String) -> NifResult<String> {
    if !name.starts_with("MLX_") || name.contains('=') || name.contains('\0') || value.contains('\0') {
        return Err(crate::error::argument_error(format!(
            "mlx_env_default: name must be an MLX_ variable without = or NUL, got: {name:?}"
        )));
    }
    match std::env::var(&name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => {
            std::env::set_var(&name, &value);
            Ok(value)
        }
    }
}

/// Turns inline evaluation of cheap graphs in the calling thread on or off (for every CPU
/// worker; see `emily::Worker::try_inline`); returns the previous setting.
#[rustler::nif]
pub fn inline_eval(on: bool) -> bool {
    emily::worker::set_inline(on)
}

/// Turns direct execution of MLX's CPU kernels in the evaluating thread on or off (for every
/// CPU worker, from its next job; see `emily::direct`); returns the previous setting.
#[rustler::nif]
pub fn direct_execution(on: bool) -> bool {
    emily::direct::set_direct(on)
}

/// Whether direct execution works in this process: true, false, or nil before a CPU
/// worker has asked for it.
#[rustler::nif]
pub fn direct_execution_available() -> Option<bool> {
    emily::direct::direct_available()
}

/// Turns Emily's CPU kernels on or off for ops built from now on (`Emily.Config`'s
/// `cpu_kernels`; programs `Emily.Compiler` captured before keep the primitives they hold);
/// returns the previous setting, or nil where there are none.
#[rustler::nif]
pub fn cpu_kernels(on: bool) -> Option<bool> {
    emily::set_cpu_kernels(on)
}

/// The instruction set of Emily's CPU kernels here, or nil without them.
#[rustler::nif]
pub fn cpu_kernels_isa() -> Option<String> {
    emily::cpu_kernels_isa()
}

#[rustler::nif]
pub fn mlx_version() -> String {
    emily::mlx_version()
}
