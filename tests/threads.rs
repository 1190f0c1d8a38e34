//! Where the threads Emily brings about run (src/threads.rs, src/cpp/threads.cc): with the
//! process's CPU set, even when the thread that brings them about is bound to one CPU, as a
//! BEAM scheduler is under `+sbt`. These tests count and inspect every thread of the
//! process, so they take turns (TURN) and direct execution's setting is restored.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::sync::Mutex;

use emily::ops::binary;
use emily::{Array, Device, Dtype, Worker};

mod common;
use common::{f32s, read_f32};

static TURN: Mutex<()> = Mutex::new(());

extern "C" {
    fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
    fn dlsym(handle: *mut std::ffi::c_void, name: *const std::ffi::c_char) -> *mut std::ffi::c_void;
}

fn tids() -> BTreeSet<u32> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect()
}

fn cpus_of(status: &str) -> String {
    let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// Cpus_allowed_list of thread `tid` (None: it has exited meanwhile).
fn thread_cpus(tid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok().map(|s| cpus_of(&s))
}

/// The process's CPU set: the main thread's.
fn process_cpus() -> String {
    cpus_of(&std::fs::read_to_string("/proc/self/status").unwrap())
}

/// Binds the calling thread to its first allowed CPU (what `+sbt` does to a scheduler), runs
/// `f`, and gives the thread the process's set back.
fn bound_to_one_cpu<T>(f: impl FnOnce() -> T) -> T {
    let first: usize = process_cpus().split(['-', ',']).next().unwrap().parse().unwrap();
    let mut one = [0u64; 16];
    one[first / 64] |= 1 << (first % 64);
    assert_eq!(unsafe { sched_setaffinity(0, std::mem::size_of_val(&one), one.as_ptr()) }, 0);
    assert_eq!(thread_cpus(gettid()).unwrap(), first.to_string());
    let out = f();
    assert!(emily::threads::use_process_cpus());
    assert_eq!(thread_cpus(gettid()).unwrap(), process_cpus());
    out
}

/// The name (comm) of thread `tid`; empty when it has exited meanwhile.
fn thread_name(tid: u32) -> String {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn gettid() -> u32 {
    std::fs::read_link("/proc/thread-self").unwrap().file_name().unwrap().to_str().unwrap().parse().unwrap()
}

fn vec_f32(v: &[f32]) -> Array {
    Array::from_bytes(&f32s(v), &[v.len() as i64], Dtype::F32).unwrap()
}

#[test]
fn threads_started_from_a_bound_thread_take_the_process_cpus() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    if emily::threads::process_cpu_count().unwrap() < 2 {
        return; // one CPU: every thread is "bound" to it
    }
    let before = tids();
    let direct = emily::direct::set_direct(false);
    let (w, sum) = bound_to_one_cpu(|| {
        // a worker thread, and (direct execution off) MLX's thread for the worker's stream,
        // started by this caller evaluating inline
        let w = Worker::start(Device::Cpu, 16).unwrap();
        let c = binary::add(&vec_f32(&[1.0, 2.0]), &vec_f32(&[10.0, 20.0]), w.stream()).unwrap();
        let scan = w
            .try_inline(|ctx| emily::eval_if_cheap(&[&c], &[ctx.stream.index, ctx.cpu_stream.index], false))
            .expect("idle worker")
            .unwrap();
        assert!(scan.evaluated);
        (w, c)
    });
    emily::direct::set_direct(direct);
    assert_eq!(read_f32(&sum), vec![11.0, 22.0]);
    let new: Vec<u32> = tids().difference(&before).copied().collect();
    // the worker's thread and MLX's stream thread at least
    assert!(new.len() >= 2, "new threads: {new:?}");
    for tid in new {
        if let Some(cpus) = thread_cpus(tid) {
            assert_eq!(cpus, process_cpus(), "thread {tid} started bound");
        }
    }
    drop(w);
}

#[test]
fn pooled_streams_get_no_threads_from_mlx_sweeps() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // a worker takes one stream of a pool of 32; MLX's cache and memory limits synchronize
    // every CPU stream, which started a thread for each pooled one (31 idle threads)
    let w = Worker::start(Device::Cpu, 16).unwrap();
    let before = tids();
    // The sweeps run on a thread of their own name, which every thread they start inherits:
    // the test harness starts threads for the other tests meanwhile.
    let sweeper = std::thread::Builder::new()
        .name(SWEEPER.into())
        .spawn(|| {
            let cache = emily::memory::set_cache_limit(64 << 20);
            emily::memory::set_cache_limit(cache);
            let limit = emily::memory::set_memory_limit(1 << 40);
            emily::memory::set_memory_limit(limit);
            gettid()
        })
        .unwrap()
        .join()
        .unwrap();
    let started: Vec<u32> =
        tids().difference(&before).copied().filter(|&t| t != sweeper && thread_name(t) == SWEEPER).collect();
    // MLX's default stream may get its thread here (MLX's own, not a pooled one)
    assert!(started.len() <= 1, "threads the sweeps started: {started:?}");
    drop(w);
}

const SWEEPER: &str = "mlx-sweeps";

#[test]
fn openblas_gets_a_thread_per_cpu_of_the_process() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(threads) = emily::blas::threads() else { return };
    let cpus = emily::threads::process_cpu_count().unwrap();
    let cap = ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"]
        .iter()
        .find_map(|v| std::env::var(v).ok().and_then(|s| s.parse::<usize>().ok()).filter(|&n| n > 0));
    let want = cap.map_or(cpus, |c| c.min(cpus));
    // loaded by this test's main thread: already fitted
    assert_eq!(threads, want);
    // as if loaded from a thread bound to one CPU: OpenBLAS counts one
    let set = unsafe { dlsym(std::ptr::null_mut(), c"openblas_set_num_threads".as_ptr()) };
    assert!(!set.is_null());
    let set: extern "C" fn(i32) = unsafe { std::mem::transmute(set) };
    set(1);
    assert_eq!(emily::blas::threads(), Some(1));
    let fitted = bound_to_one_cpu(emily::blas::fit_threads);
    assert_eq!(fitted, Some(want));
    assert_eq!(emily::blas::threads(), Some(want));
}
