//! Callers standing in for an idle CPU worker (`Worker::try_inline`) to evaluate cheap graphs
//! in their own thread, and lazily released arrays.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use emily::ops::{binary, linalg, unary};
use emily::{Array, Device, Dtype, Worker};

mod common;
use common::{f32s, read_f32};

fn vec_f32(v: &[f32]) -> Array {
    Array::from_bytes(&f32s(v), &[v.len() as i64], Dtype::F32).unwrap()
}

/// Evaluates `a` in the calling thread when the worker lets it; `None` otherwise.
fn eval_inline(w: &Worker, a: &Array) -> Option<emily::Result<emily::Scan>> {
    w.try_inline(|ctx| emily::eval_if_cheap(&[a], &[ctx.stream.index, ctx.cpu_stream.index], false))
}

#[test]
fn an_idle_cpu_worker_lets_the_caller_evaluate_a_cheap_graph() {
    let w = Worker::start(Device::Cpu, 16).unwrap();
    let a = vec_f32(&[1.0, 2.0, 3.0]);
    let b = vec_f32(&[10.0, 20.0, 30.0]);
    let c = unary::negative(&binary::add(&a, &b, w.stream()).unwrap(), w.stream()).unwrap();
    let scan = eval_inline(&w, &c).expect("idle worker").unwrap();
    assert!(scan.evaluated && !scan.too_costly);
    assert_eq!(read_f32(&c), vec![-11.0, -22.0, -33.0]);
}

#[test]
fn a_costly_graph_is_left_to_the_worker_unevaluated() {
    let w = Worker::start(Device::Cpu, 16).unwrap();
    // a factorization
    let m = Array::from_bytes(&f32s(&[4.0, 2.0, 2.0, 3.0]), &[2, 2], Dtype::F32).unwrap();
    let l = linalg::cholesky(&m, false, w.cpu_stream()).unwrap();
    let scan = eval_inline(&w, &l).unwrap().unwrap();
    assert!(scan.too_costly && !scan.evaluated && !l.is_available());
    // too many elements: 2^18 touched at most
    let big = Array::from_bytes(&vec![0u8; 4 << 18], &[1 << 18], Dtype::F32).unwrap();
    let e = unary::exp(&big, w.stream()).unwrap();
    let scan = eval_inline(&w, &e).unwrap().unwrap();
    assert!(scan.too_costly && !e.is_available());
    // a transcendental result of MLX's counts 32 units an element: tan of 2^14 elements is
    // 2^19; one of Emily's CPU kernels counts 2 (exp of 2^14 is 2^15 + 2^14, cheap)
    let mid = Array::from_bytes(&vec![0u8; 4 << 14], &[1 << 14], Dtype::F32).unwrap();
    let e = unary::tan(&mid, w.stream()).unwrap();
    assert!(eval_inline(&w, &e).unwrap().unwrap().too_costly);
    let e = unary::exp(&mid, w.stream()).unwrap();
    let scan = eval_inline(&w, &e).unwrap().unwrap();
    assert_eq!(scan.too_costly, emily::cpu_kernels_isa().is_none());
    // a matmul counts its multiply-adds, 1/64 unit each: 256x256x256 is 2^18 units (cheap),
    // 256x256x512 is 2^19 (left to the worker)
    let x = Array::from_bytes(&vec![0u8; 4 << 16], &[256, 256], Dtype::F32).unwrap();
    let y = Array::from_bytes(&vec![0u8; 8 << 16], &[256, 512], Dtype::F32).unwrap();
    let p = linalg::matmul(&x, &y, w.stream()).unwrap();
    assert!(eval_inline(&w, &p).unwrap().unwrap().too_costly);
    let y = Array::from_bytes(&vec![0u8; 4 << 16], &[256, 256], Dtype::F32).unwrap();
    let p = linalg::matmul(&x, &y, w.stream()).unwrap();
    let scan = eval_inline(&w, &p).unwrap().unwrap();
    assert!(!scan.too_costly && scan.evaluated && p.is_available());
}

#[test]
fn a_busy_worker_or_a_gpu_worker_does_not_let_the_caller_in() {
    let w = Arc::new(Worker::start(Device::Cpu, 16).unwrap());
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    w.submit(Box::new(move |_| {
        started_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    }))
    .unwrap();
    started_rx.recv().unwrap();
    assert!(w.try_inline(|_| ()).is_none(), "the worker is running a job");
    go_tx.send(()).unwrap();
    // a queued job keeps callers out too, so that it runs first
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (held_tx, held_rx) = mpsc::channel();
    w.submit(Box::new(move |_| {
        held_tx.send(()).unwrap();
        hold_rx.recv().unwrap();
    }))
    .unwrap();
    w.submit(Box::new(|_| ())).unwrap();
    held_rx.recv().unwrap();
    assert!(w.try_inline(|_| ()).is_none());
    hold_tx.send(()).unwrap();
    // once the worker is done, a caller gets in
    let t = Instant::now();
    let mut got = None;
    while got.is_none() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
        got = w.try_inline(|_| 7);
    }
    assert_eq!(got, Some(7));
    // off for everyone
    assert!(emily::worker::set_inline(false));
    assert!(w.try_inline(|_| ()).is_none());
    emily::worker::set_inline(true);
    if Device::Gpu.is_available() {
        let g = Worker::start(Device::Gpu, 4).unwrap();
        assert!(g.try_inline(|_| ()).is_none());
    }
}

#[test]
fn callers_and_the_worker_take_turns_on_one_stream() {
    // 8 threads evaluating inline when they can, through the queue when not; every result
    // checked.
    let w = Arc::new(Worker::start(Device::Cpu, 4096).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                let mut inline = 0;
                for i in 0..300 {
                    let x = (t * 1000 + i) as f32;
                    let a = vec_f32(&[x, 1.0, -x]);
                    let mut acc = a.try_clone().unwrap();
                    for _ in 0..4 {
                        acc = binary::add(&acc, &a, w.stream()).unwrap();
                    }
                    let acc = match eval_inline(&w, &acc) {
                        Some(r) => {
                            assert!(r.unwrap().evaluated);
                            inline += 1;
                            acc
                        }
                        None => common::eval_on(&w, acc),
                    };
                    assert_eq!(read_f32(&acc), vec![5.0 * x, 5.0, -5.0 * x]);
                    w.release(acc);
                }
                inline
            })
        })
        .collect();
    let inline: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(inline > 0, "no caller ever evaluated inline");
}

/// Bytes that count their owner's drops.
struct Counted(Vec<u8>, Arc<AtomicUsize>);
impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn small_released_arrays_are_dropped_within_the_delay_without_a_job() {
    let w = Worker::start(Device::Cpu, 16).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let (a, _) = Array::from_owner(Counted(f32s(&[1.0; 16]), drops.clone()), &[16], Dtype::F32).unwrap();
    let t = Instant::now();
    w.release(a);
    while drops.load(Ordering::SeqCst) == 0 {
        assert!(t.elapsed() < Duration::from_secs(2), "a released array was never dropped");
        std::thread::sleep(Duration::from_millis(1));
    }
}
