//! Worker threads that own MLX streams.
//!
//! MLX 0.32 binds a stream to the thread that created it: evaluating a graph elsewhere throws
//! "There is no Stream(cpu, 0) in current thread". Each [`Worker`] is an OS thread that
//! creates its stream(s) and runs the jobs queued for it: evaluation, reads, anything that
//! touches data. Building lazy graph nodes does not need the owner (see ops/), so it happens
//! on the caller's thread with the worker's stream named explicitly.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

use crate::array::Array;
use crate::error::{Error, ErrorKind, Result};
use crate::ffi::{self, emily_stream};
use crate::queue::{Next, Rejected, WorkQueue};
use crate::sync::{lock, AtomicU64, Mutex, Ordering};
use std::ffi::c_int;
use std::sync::atomic::AtomicBool;

pub type Stream = emily_stream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Gpu,
}

impl Device {
    pub fn code(self) -> i32 {
        match self {
            Device::Cpu => 0,
            Device::Gpu => 1,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        }
    }
    pub fn is_available(self) -> bool {
        unsafe { ffi::emily_device_available(self.code()) != 0 }
    }

    /// MLX's description of the device (`device_info`): name, architecture, memory; on
    /// CUDA also free memory, compute capability, UUID and PCI bus id. Sorted by key.
    pub fn info(self) -> Result<Vec<(String, InfoValue)>> {
        if !self.is_available() {
            return Err(Error::runtime(format!("MLX has no {} device in this build", self.name())));
        }
        let p = unsafe { ffi::emily_device_info(self.code()) };
        if p.is_null() {
            return Err(Error::last());
        }
        let text = unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned();
        let mut out: Vec<(String, InfoValue)> = text
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(k, v)| {
                let value = match v.strip_prefix('#').map(str::parse::<u64>) {
                    Some(Ok(n)) => InfoValue::Int(n),
                    _ => InfoValue::Text(v.to_string()),
                };
                (k.to_string(), value)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// A value in [`Device::info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoValue {
    Int(u64),
    Text(String),
}

/// What a job sees on the worker thread.
pub struct Ctx {
    /// The worker's stream on its device.
    pub stream: Stream,
    /// A CPU stream owned by the same thread (for ops MLX runs only on the CPU, such as
    /// most of linalg); equal to `stream` on a CPU worker.
    pub cpu_stream: Stream,
}

/// A unit of work: called with the context on the worker, or with the error that kept it
/// from running (shutdown).
pub type Job = Box<dyn FnOnce(std::result::Result<&Ctx, Error>) + Send>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct Worker {
    id: u64,
    device: Device,
    stream: Stream,
    cpu_stream: Stream,
    queue: std::sync::Arc<WorkQueue<Job, Array>>,
    /// Held by whoever uses the streams: the worker thread for each job and batch of drops,
    /// or a caller evaluating a cheap graph inline ([`Worker::try_inline`]).
    exec: std::sync::Arc<Mutex<()>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Stack of a worker thread.
const WORKER_STACK_BYTES: usize = 8 << 20;

/// Released arrays at least this large are dropped promptly (see [`Worker::release`]).
pub const URGENT_DROP_BYTES: usize = 1 << 20;

/// Whether callers may evaluate cheap graphs on CPU workers' streams in their own thread.
static INLINE: AtomicBool = AtomicBool::new(true);

/// Turns inline evaluation on or off for every worker; returns the previous setting.
pub fn set_inline(on: bool) -> bool {
    INLINE.swap(on, Ordering::Relaxed)
}

impl Worker {
    /// Starts a worker thread for `device` with a queue of at most `limit` jobs.
    pub fn start(device: Device, limit: usize) -> Result<Worker> {
        let queue = std::sync::Arc::new(WorkQueue::<Job, Array>::new(limit));
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel::<Result<(Stream, Stream)>>();
        let q = queue.clone();
        let exec = std::sync::Arc::new(Mutex::new(()));
        let ex = exec.clone();
        let handle = std::thread::Builder::new()
            .name(format!("emily-{}-{}", device.name(), id))
            // MLX's CPU kernels (LAPACK's included) run here with direct execution: the
            // stack MLX's own stream threads get (the usual 8 MiB main-thread default).
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || {
                // not the one CPU of a bound BEAM scheduler that may have started it
                crate::threads::use_process_cpus();
                let streams = new_stream(device).and_then(|s| match device {
                    Device::Cpu => Ok((s, s)),
                    Device::Gpu => new_stream(Device::Cpu).map(|c| (s, c)),
                });
                let ctx = match streams {
                    Ok((stream, cpu_stream)) => {
                        // (the first CPU worker probes direct execution here)
                        own_streams(&[stream.index, cpu_stream.index], device);
                        let _ = tx.send(Ok((stream, cpu_stream)));
                        Ctx { stream, cpu_stream }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                run(id, device, &q, &ex, &ctx);
            })
            .map_err(|e| Error::runtime(format!("cannot start worker thread: {e}")))?;
        let (stream, cpu_stream) = match rx.recv() {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = handle.join();
                return Err(e);
            }
            Err(_) => return Err(Error::runtime("worker thread died while starting")),
        };
        tracing::debug!(worker = id, device = device.name(), "worker started");
        Ok(Worker { id, device, stream, cpu_stream, queue, exec, thread: Mutex::new(Some(handle)) })
    }

    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn device(&self) -> Device {
        self.device
    }
    /// The stream to build graph nodes with (from any thread).
    pub fn stream(&self) -> Stream {
        self.stream
    }
    pub fn cpu_stream(&self) -> Stream {
        self.cpu_stream
    }
    pub fn queue_limit(&self) -> usize {
        self.queue.limit()
    }
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues a job. Never blocks: a full or closed queue is an error.
    pub fn submit(&self, job: Job) -> Result<()> {
        self.queue.push(job).map_err(|(_job, why)| match why {
            Rejected::Full => Error {
                kind: ErrorKind::QueueFull,
                message: format!("worker {} queue is full ({} jobs)", self.id, self.queue.limit()),
            },
            Rejected::Closed => Error { kind: ErrorKind::Closed, message: format!("worker {} is shut down", self.id) },
        })
    }

    /// Runs `f` in the calling thread, standing in for the worker, when the worker is a CPU
    /// worker with nothing queued and not busy (MLX's CPU streams may be used from any thread
    /// whose use is serialised; GPU streams stay with their thread). Drops handed over
    /// before are done first. `None`, without running `f`, otherwise. For short work only:
    /// the caller may be a BEAM scheduler.
    pub fn try_inline<R>(&self, f: impl FnOnce(&Ctx) -> R) -> Option<R> {
        if self.device != Device::Cpu || !INLINE.load(Ordering::Relaxed) {
            return None;
        }
        let _guard = self.exec.try_lock().ok()?;
        drop(self.queue.take_drops_if_idle()?);
        let _owner = StandIn::new(&[self.stream.index, self.cpu_stream.index], self.device);
        Some(f(&Ctx { stream: self.stream, cpu_stream: self.cpu_stream }))
    }

    /// Hands an array to the worker to drop. Dropped in place if the worker is gone.
    /// Small arrays wait for the worker's next job (or a caller standing in for it); an
    /// array of at least [`URGENT_DROP_BYTES`] wakes the worker.
    pub fn release(&self, a: Array) {
        let urgent = a.nbytes() >= URGENT_DROP_BYTES;
        if let Err(a) = self.queue.push_drop_lazy(a, urgent) {
            drop(a);
        }
    }

    /// Stops the worker: queued jobs are answered with an error, the thread is joined.
    pub fn shutdown(&self) {
        self.queue.close();
        let handle = lock(&self.thread).take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Whether the worker's streams are in use now: a job running on its thread, or a caller
    /// evaluating inline in its stead.
    pub fn is_busy(&self) -> bool {
        self.exec.try_lock().is_err()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Marks the calling thread as standing for the worker owning `streams` (none: for no
/// worker), with direct execution of its MLX kernels for a CPU worker while
/// [`crate::direct::set_direct`] says so (see `src/direct.rs`). Called before each job, so
/// a change of setting applies from the next one.
fn own_streams(streams: &[i32], device: Device) {
    let direct = device == Device::Cpu && !streams.is_empty() && crate::direct::direct_wanted();
    unsafe { ffi::emily_own_streams(streams.as_ptr(), streams.len(), direct as c_int) }
}

/// The calling thread stands for a worker while this lives (see `emily_own_streams`).
struct StandIn;

impl StandIn {
    fn new(streams: &[i32], device: Device) -> StandIn {
        own_streams(streams, device);
        StandIn
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        own_streams(&[], Device::Cpu);
    }
}

fn new_stream(device: Device) -> Result<Stream> {
    let mut s = Stream { index: 0, device: device.code() };
    crate::error::check(unsafe { ffi::emily_stream_new(device.code(), &mut s) })?;
    Ok(s)
}

fn run(id: u64, device: Device, queue: &WorkQueue<Job, Array>, exec: &Mutex<()>, ctx: &Ctx) {
    let streams = [ctx.stream.index, ctx.cpu_stream.index];
    // The streams' lock, with this thread standing for the worker under the current setting.
    let take_streams = || {
        let held = lock(exec);
        own_streams(&streams, device);
        held
    };
    loop {
        match queue.next() {
            Next::Drops(arrays) => {
                let _x = take_streams();
                drop(arrays)
            }
            Next::Job(job) => {
                let _x = take_streams();
                let span = tracing::trace_span!("emily_job", worker = id);
                let _g = span.enter();
                if catch_unwind(AssertUnwindSafe(|| job(Ok(ctx)))).is_err() {
                    tracing::error!(worker = id, "job panicked");
                }
            }
            Next::Closed(jobs, drops) => {
                let _x = take_streams();
                drop(drops);
                let n = jobs.len();
                for job in jobs {
                    let err = Error { kind: ErrorKind::Closed, message: format!("worker {id} shut down") };
                    let _ = catch_unwind(AssertUnwindSafe(|| job(Err(err))));
                }
                tracing::debug!(worker = id, cancelled = n, "worker stopped");
                return;
            }
        }
    }
}
