//! Worker threads own their streams; graphs built elsewhere evaluate on the owner.
use std::sync::mpsc;

use emily::ops::{binary, unary};
use emily::{Array, Device, Dtype, ErrorKind, Worker};

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn read_f32(a: &Array) -> Vec<f32> {
    a.bytes().unwrap().chunks(4).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect()
}

/// Evaluates `a` on `w` and returns it.
fn eval_on(w: &Worker, a: Array) -> Array {
    let (tx, rx) = mpsc::channel();
    w.submit(Box::new(move |ctx| {
        let r = ctx.map_err(|e| e.clone()).and_then(|_| emily::eval(&[&a]).map(|_| a));
        tx.send(r).unwrap();
    }))
    .unwrap();
    rx.recv().unwrap().unwrap()
}

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

#[test]
fn external_memory_is_aliased_or_reported() {
    let data: Vec<u8> = f32s(&[1.0, 2.0, 3.0, 4.0]);
    let ptr = data.as_ptr() as usize;
    let a = Array::from_owner(data, &[4], Dtype::F32).unwrap();
    let w = Worker::start(Device::Cpu, 4).unwrap();
    let a = eval_on(&w, a);
    let p = a.bytes().unwrap().as_ptr() as usize;
    eprintln!("external aliased: {}", p == ptr);
    assert_eq!(read_f32(&a), vec![1.0, 2.0, 3.0, 4.0]);
}
