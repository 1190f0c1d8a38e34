//! Worker threads own their streams; graphs built elsewhere evaluate on the owner.
use std::sync::mpsc;

use emily::ops::{binary, unary};
use emily::{Array, Device, Dtype, ErrorKind, Worker};

mod common;
use common::{eval_on, f32s, read_f32};

#[test]
fn graph_built_off_thread_evaluates_on_owner() {
    let w = Worker::start(Device::Cpu, 64).unwrap();
    let a = Array::from_bytes(&f32s(&[1.0, 2.0, 3.0]), &[3], Dtype::F32).unwrap();
    let b = Array::from_bytes(&f32s(&[10.0, 20.0, 30.0]), &[3], Dtype::F32).unwrap();
    let c = binary::add(&a, &b, w.stream()).unwrap();
    let d = unary::negative(&c, w.stream()).unwrap();
    assert!(!d.is_available());
    let d = eval_on(&w, d);
    assert_eq!(read_f32(&d), vec![-11.0, -22.0, -33.0]);
}

#[test]
fn many_threads_build_concurrently() {
    let w = std::sync::Arc::new(Worker::start(Device::Cpu, 1024).unwrap());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let x = (t * 1000 + i) as f32;
                    let a = Array::from_bytes(&f32s(&[x, 1.0]), &[2], Dtype::F32).unwrap();
                    let mut acc = a.try_clone().unwrap();
                    for _ in 0..5 {
                        acc = binary::add(&acc, &a, w.stream()).unwrap();
                    }
                    let r = eval_on(&w, acc);
                    assert_eq!(read_f32(&r), vec![6.0 * x, 6.0]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn shape_errors_are_argument_errors() {
    let w = Worker::start(Device::Cpu, 4).unwrap();
    let a = Array::from_bytes(&f32s(&[1.0, 2.0, 3.0]), &[3], Dtype::F32).unwrap();
    let b = Array::from_bytes(&f32s(&[1.0, 2.0]), &[2], Dtype::F32).unwrap();
    let e = binary::add(&a, &b, w.stream()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Argument);
    assert!(e.message.contains("broadcast"), "{}", e.message);
}

#[test]
fn shutdown_answers_queued_jobs_with_errors() {
    let w = Worker::start(Device::Cpu, 16).unwrap();
    let (tx, rx) = mpsc::channel();
    // Block the worker so that later jobs stay queued.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    w.submit(Box::new(move |_| {
        go_rx.recv().unwrap();
    }))
    .unwrap();
    for _ in 0..5 {
        let tx = tx.clone();
        w.submit(Box::new(move |ctx| tx.send(ctx.is_ok()).unwrap())).unwrap();
    }
    let closer = std::thread::spawn({
        let go_tx = go_tx.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            go_tx.send(()).unwrap();
        }
    });
    w.shutdown();
    closer.join().unwrap();
    let answers: Vec<bool> = rx.try_iter().collect();
    assert_eq!(answers.len(), 5);
    assert!(w.submit(Box::new(|_| {})).is_err());
}

#[test]
fn full_queue_is_reported() {
    let w = Worker::start(Device::Cpu, 1).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    w.submit(Box::new(move |_| {
        go_rx.recv().unwrap();
    }))
    .unwrap();
    // The first job may already be running; fill the one queue slot, then overflow.
    std::thread::sleep(std::time::Duration::from_millis(20));
    w.submit(Box::new(|_| {})).unwrap();
    let e = w.submit(Box::new(|_| {})).unwrap_err();
    assert_eq!(e.kind, ErrorKind::QueueFull);
    go_tx.send(()).unwrap();
}

/// Foreign bytes shared with the test, counting the owner's drops.
struct Shared(std::sync::Arc<Vec<u8>>, std::sync::Arc<std::sync::atomic::AtomicUsize>);
impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
impl Drop for Shared {
    fn drop(&mut self) {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn external_memory_is_aliased_never_written_and_released_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    assert!(emily::external_aliasing(), "the CPU allocator's layout check failed");
    let data = Arc::new(f32s(&[1.0, 2.0, 3.0, 4.0]));
    let drops = Arc::new(AtomicUsize::new(0));
    let (a, aliased) = Array::from_owner(Shared(data.clone(), drops.clone()), &[4], Dtype::F32).unwrap();
    assert!(aliased);
    assert_eq!(a.data_addr(), data.as_ptr() as usize);
    assert!(!a.is_donatable(), "foreign memory must never be donated");
    let w = Worker::start(Device::Cpu, 4).unwrap();
    // exp(a) with `a`'s only handle gone: MLX would donate an allocator buffer here.
    let y = unary::exp(&a, w.stream()).unwrap();
    let z = binary::add(&a, &a, w.stream()).unwrap();
    drop(a);
    let y = eval_on(&w, y);
    let z = eval_on(&w, z);
    assert_ne!(y.data_addr(), data.as_ptr() as usize);
    assert_eq!(&data[..], &f32s(&[1.0, 2.0, 3.0, 4.0])[..], "MLX wrote into foreign memory");
    let want = [std::f32::consts::E, 7.389_056, 20.085_537, 54.598_15];
    for (got, want) in read_f32(&y).iter().zip(want) {
        assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    }
    assert_eq!(read_f32(&z), vec![2.0, 4.0, 6.0, 8.0]);
    drop((y, z));
    drop(w);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "owner released exactly once after MLX let go");
}

#[test]
fn misaligned_or_bad_external_memory_is_copied_or_refused_and_released_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    struct Off(Shared, usize);
    impl AsRef<[u8]> for Off {
        fn as_ref(&self) -> &[u8] {
            &self.0.as_ref()[self.1..]
        }
    }
    let mut bytes = vec![0u8];
    bytes.extend(f32s(&[5.0, 6.0]));
    let data = Arc::new(bytes);
    let drops = Arc::new(AtomicUsize::new(0));
    let (a, aliased) = Array::from_owner(Off(Shared(data.clone(), drops.clone()), 1), &[2], Dtype::F32).unwrap();
    assert!(!aliased, "a misaligned pointer is copied");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "released right after the copy");
    assert_eq!(read_f32(&a), vec![5.0, 6.0]);
    // Wrong size: an error, and the owner is still released once.
    let e = Array::from_owner(Shared(data.clone(), drops.clone()), &[7], Dtype::F32).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Argument);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn an_allocation_over_the_memory_limit_is_an_error_not_a_crash() {
    let w = Worker::start(Device::Cpu, 4).unwrap();
    // One row of 2^20 f32 more than MLX's memory limit (80% of RAM) holds: the op builds
    // (it fits RAM + swap), evaluating it is refused before anything runs. On the CPU, MLX
    // would write through the null buffer of a failed malloc; past the limit it only paces.
    let rows = (emily::memory::stats().limit / (4 << 20) + 1) as i64;
    let a = Array::from_bytes(&vec![0u8; 4 << 20], &[1, 1 << 20], Dtype::F32).unwrap();
    let b = Array::from_bytes(&vec![0u8; 4 * rows as usize], &[rows, 1], Dtype::F32).unwrap();
    let c = binary::add(&a, &b, w.stream()).unwrap();
    let (tx, rx) = mpsc::channel();
    w.submit(Box::new(move |ctx| {
        let r = ctx.map_err(|e| e.clone()).and_then(|_| emily::eval(&[&c]));
        tx.send(r).unwrap();
    }))
    .unwrap();
    let e = rx.recv().unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Runtime, "{}", e.message);
    assert!(e.message.contains("memory limit"), "{}", e.message);
}

/// Runs `f` on `w` and returns its result.
fn on<T: Send + 'static>(w: &Worker, f: impl FnOnce(&emily::Ctx) -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    w.submit(Box::new(move |ctx| tx.send(f(ctx.unwrap())).unwrap())).unwrap();
    rx.recv().unwrap()
}

#[test]
fn scan_finds_nodes_of_other_streams_and_evaluates_only_without_them() {
    let a_w = Worker::start(Device::Cpu, 8).unwrap();
    let b_w = Worker::start(Device::Cpu, 8).unwrap();
    let x = Array::from_bytes(&f32s(&[1.0, 2.0]), &[2], Dtype::F32).unwrap();
    let on_a = unary::negative(&x, a_w.stream()).unwrap();
    let on_b = binary::add(&on_a, &x, b_w.stream()).unwrap();
    let (on_a, on_b, stream) = on(&b_w, move |ctx| {
        let scan = emily::scan_and_eval(&[&on_b], &[ctx.stream.index], false).unwrap();
        assert!(!scan.evaluated);
        assert_eq!(scan.foreign.len(), 1);
        assert!(!scan.foreign[0].0.is_available());
        let stream = scan.foreign[0].1;
        (on_a, on_b, stream)
    });
    assert_eq!(stream, a_w.stream(), "the foreign node is reported with its stream");
    // Evaluate the foreign part on its owner, then the rest evaluates.
    let on_a = eval_on(&a_w, on_a);
    let on_b = on(&b_w, move |ctx| {
        let scan = emily::scan_and_eval(&[&on_b], &[ctx.stream.index], false).unwrap();
        assert!(scan.evaluated && scan.foreign.is_empty());
        on_b
    });
    assert_eq!(read_f32(&on_b), vec![0.0, 0.0]);
    assert_eq!(read_f32(&on_a), vec![-1.0, -2.0]);
}

#[test]
fn scan_reports_an_input_one_reference_away_from_donation() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let x = Array::from_bytes(&f32s(&[1.0, 2.0, 3.0]), &[3], Dtype::F32).unwrap();
    let x = eval_on(&w, unary::negative(&x, w.stream()).unwrap());
    let id = x.buffer_id();
    let holder = x.try_clone().unwrap();
    let y = unary::exp(&x, w.stream()).unwrap();
    // x's handle is alive too: two extra references, not a candidate.
    let (x, y) = on(&w, move |ctx| {
        let scan = emily::scan_and_eval(&[&y], &[ctx.stream.index], true).unwrap();
        assert!(scan.candidates.is_empty());
        (x, y)
    });
    drop(y);
    let y = unary::exp(&x, w.stream()).unwrap();
    drop(x);
    // Only the holder is left besides the graph: reported, and MLX did not donate.
    let y = on(&w, move |ctx| {
        let scan = emily::scan_and_eval(&[&y], &[ctx.stream.index], true).unwrap();
        assert_eq!(scan.candidates, vec![id]);
        y
    });
    assert_ne!(y.buffer_id(), id);
    assert_eq!(read_f32(&holder), vec![-1.0, -2.0, -3.0]);
    // Without the holder MLX donates: the output takes the input's buffer.
    let z = unary::exp(&holder, w.stream()).unwrap();
    drop(holder);
    let z = on(&w, move |ctx| {
        let scan = emily::scan_and_eval(&[&z], &[ctx.stream.index], true).unwrap();
        assert!(scan.candidates.is_empty());
        z
    });
    assert_eq!(z.buffer_id(), id);
}
