//! Direct execution (src/direct.rs): CPU workers run MLX's kernels in their own thread.
//! The setting is process-wide, so these tests keep to one test function per scenario and
//! restore it; other tests running meanwhile stay correct either way. The tests of this
//! file take turns (SETTING).
use std::sync::Mutex;

use emily::ops::{binary, creation, linalg, shape, unary};
use emily::{Array, Device, Dtype, ErrorKind, Worker};

mod common;
use common::{eval_on, f32s, on_worker, read_f32, try_eval_on};

static SETTING: Mutex<()> = Mutex::new(());

fn chain(w: &Worker, n: usize, k: usize) -> Array {
    let s = w.stream();
    let x = creation::arange(0.0, n as f64, 1.0, Dtype::F32, s).unwrap();
    let mut acc = x.try_clone().unwrap();
    for i in 0..k {
        let c = creation::full(&[n as i64], (i % 7) as f64 * 0.25 + 1.0, Dtype::F32, s).unwrap();
        acc = binary::add(&unary::sin(&binary::multiply(&acc, &c, s).unwrap(), s).unwrap(), &x, s).unwrap();
    }
    acc
}

#[test]
fn linux_binds_mlx_scheduler_calls_to_emily() {
    let _turn = SETTING.lock().unwrap_or_else(|e| e.into_inner());
    let w = Worker::start(Device::Cpu, 16).unwrap();
    let _ = eval_on(&w, chain(&w, 8, 2));
    if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
        assert_eq!(emily::direct::direct_available(), Some(true));
    }
}

#[test]
fn direct_and_queued_execution_agree_and_switch_safely() {
    let _turn = SETTING.lock().unwrap_or_else(|e| e.into_inner());
    let w = Worker::start(Device::Cpu, 64).unwrap();
    let before = emily::direct::set_direct(false);
    let queued = read_f32(&eval_on(&w, chain(&w, 4096, 40)));
    // MLX's stream thread still has a large graph queued (async) when direct execution
    // comes back on: the next job waits for it before running kernels that read its result.
    let big = chain(&w, 1 << 18, 60);
    let big = on_worker(&w, move |_| emily::async_eval(&[&big]).map(|_| big)).unwrap();
    emily::direct::set_direct(true);
    let s = w.stream();
    let tail = binary::subtract(&big, &creation::full(&[1 << 18], 1.0, Dtype::F32, s).unwrap(), s).unwrap();
    let tail = eval_on(&w, tail);
    let direct = read_f32(&eval_on(&w, chain(&w, 4096, 40)));
    assert_eq!(queued, direct);
    // the same graph, queued again, for the tail
    emily::direct::set_direct(false);
    let again = chain(&w, 1 << 18, 60);
    let again = binary::subtract(&again, &creation::full(&[1 << 18], 1.0, Dtype::F32, s).unwrap(), s).unwrap();
    let again = eval_on(&w, again);
    emily::direct::set_direct(before);
    assert_eq!(read_f32(&tail), read_f32(&again));
}

#[test]
fn a_failing_kernel_reports_at_evaluation_and_the_worker_goes_on() {
    let _turn = SETTING.lock().unwrap_or_else(|e| e.into_inner());
    let w = Worker::start(Device::Cpu, 64).unwrap();
    let s = w.cpu_stream();
    for round in 0..3 {
        // singular: LAPACK's LU fails inside the kernel, while it runs
        let m = shape::reshape(&creation::full(&[4], 1.0, Dtype::F32, s).unwrap(), &[2, 2], s).unwrap();
        let inv = linalg::inv(&m, s).unwrap();
        let e = try_eval_on(&w, inv).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Runtime, "round {round}: {e}");
        assert!(e.message.contains("failed with error code"), "{e}");
        // the stream is clean for the next evaluation
        let a = Array::from_bytes(&f32s(&[4.0, 7.0, 2.0, 6.0]), &[2, 2], Dtype::F32).unwrap();
        let inv = eval_on(&w, linalg::inv(&a, s).unwrap());
        let got = read_f32(&inv);
        let want = [0.6, -0.7, -0.2, 0.4];
        for (g, x) in got.iter().zip(want) {
            assert!((g - x).abs() < 1e-5, "{got:?}");
        }
    }
}
