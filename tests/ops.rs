//! The op tables: names unique across families (one NIF per name), signatures consistent,
//! and a few ops evaluated from Rust.
use std::collections::HashSet;

use emily::ops::{creation, reduce, shape, signatures, sort};
use emily::{Array, Device, Dtype, Worker};

mod common;
use common::eval_on;

#[test]
fn op_names_are_unique_across_families() {
    let mut seen = HashSet::new();
    for sig in signatures() {
        assert!(seen.insert(sig.name), "op {} is listed twice", sig.name);
        assert!(sig.kinds.iter().all(|k| ["A", "AS", "I", "F", "N", "B", "D"].contains(k)), "{sig:?}");
    }
    for family in [creation::NAMES, reduce::NAMES, shape::NAMES, sort::NAMES] {
        for name in family {
            assert!(seen.contains(name), "{name} missing from signatures()");
        }
    }
}

fn i32s(a: &Array) -> Vec<i32> {
    a.bytes().unwrap().chunks(4).map(|c| i32::from_ne_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn ops_of_each_family_evaluate() {
    let w = Worker::start(Device::Cpu, 64).unwrap();
    let s = w.stream();
    let x = creation::arange(0.0, 6.0, 1.0, Dtype::S32, s).unwrap();
    let m = shape::reshape(&x, &[2, 3], s).unwrap();
    let t = shape::transpose(&m, &[1, 0], s).unwrap();
    let t = creation::contiguous(&t, false, s).unwrap();
    assert_eq!(i32s(&eval_on(&w, t)), vec![0, 3, 1, 4, 2, 5]);
    let sum = reduce::sum(&m, &[1], false, s).unwrap();
    assert_eq!(i32s(&eval_on(&w, sum)), vec![3, 12]);
    let sorted = sort::sort(&shape::flip(&x, &[0], s).unwrap(), 0, s).unwrap();
    assert_eq!(i32s(&eval_on(&w, sorted)), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn bad_arguments_are_errors_not_crashes() {
    let w = Worker::start(Device::Cpu, 64).unwrap();
    let s = w.stream();
    let x = creation::zeros(&[2, 3], Dtype::F32, s).unwrap();
    assert!(creation::zeros(&[1 << 40], Dtype::F32, s).is_err());
    assert!(creation::zeros(&[i32::MAX as i64; 3], Dtype::U8, s).is_err());
    assert!(shape::slice(&x, &[0, 0], &[2, 3], &[0, 1], s).is_err());
    assert!(shape::repeat(&x, 2_000_000_000, 1, s).is_err());
    assert!(reduce::sum(&x, &[5], false, s).is_err());
    assert!(creation::arange(0.0, 1.0, 0.0, Dtype::F32, s).is_err());
    assert!(creation::arange(0.0, f64::NAN, 1.0, Dtype::F32, s).is_err());
    assert!(creation::full(&[1], f64::NAN, Dtype::S32, s).is_err());
}

#[test]
fn multi_output_ops_return_any_number_of_outputs() {
    let w = Worker::start(Device::Cpu, 64).unwrap();
    let s = w.stream();
    let x = creation::arange(0.0, 100.0, 1.0, Dtype::S32, s).unwrap();
    let parts = shape::split(&x, 100, 0, s).unwrap();
    assert_eq!(parts.len(), 100);
    for (i, p) in parts.into_iter().enumerate() {
        assert_eq!(i32s(&eval_on(&w, p)), vec![i as i32]);
    }
    let rows = shape::unstack(&shape::reshape(&x, &[20, 5], s).unwrap(), 0, s).unwrap();
    assert_eq!(rows.len(), 20);
    let last = rows.into_iter().last().unwrap();
    assert_eq!(i32s(&eval_on(&w, last)), vec![95, 96, 97, 98, 99]);
    // refused before anything is handed out
    let e = shape::split(&x, 3, 0, s).unwrap_err();
    assert_eq!(e.kind, emily::ErrorKind::Argument);
}

#[test]
fn numerical_failures_at_evaluation_are_runtime_errors() {
    let w = Worker::start(Device::Cpu, 64).unwrap();
    let s = w.cpu_stream();
    let m = shape::reshape(&creation::full(&[4], 1.0, Dtype::F32, s).unwrap(), &[2, 2], s).unwrap();
    let inv = emily::ops::linalg::cpu::inv(&m, s).unwrap();
    let e = common::try_eval_on(&w, inv).err().unwrap();
    assert_eq!(e.kind, emily::ErrorKind::Runtime, "{e}");
    assert!(e.message.contains("failed with error code"), "{e}");
    // a bad argument is still one
    let e = emily::ops::linalg::cpu::inv(&x_of(&w), s).err().unwrap();
    assert_eq!(e.kind, emily::ErrorKind::Argument, "{e}");
}

fn x_of(w: &Worker) -> Array {
    creation::zeros(&[2, 3], Dtype::F32, w.stream()).unwrap()
}
