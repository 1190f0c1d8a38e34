//! The op declarations (src/ops/*.ops) against the compiled shim, and a few ops evaluated
//! from Rust.
use std::collections::{BTreeSet, HashSet};
use std::process::Command;

use emily::ops::{creation, reduce, shape, signatures, sort};
use emily::{Array, Device, Dtype, Worker};

mod common;
use common::eval_on;

/// `(family, name)` of every `emily_*` function an op family's C++ file (src/cpp/<family>.cc)
/// defines, read from the shim library's symbol table.
fn shim_definitions(families: &HashSet<&str>) -> BTreeSet<(String, String)> {
    let lib = concat!(env!("OUT_DIR"), "/libemily_shim.a");
    let out = Command::new("nm").args(["--defined-only", "-A", lib]).output().expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {lib}: {}", String::from_utf8_lossy(&out.stderr));
    let mut defs = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // <lib>:<hash>-<family>.o:<address> T emily_<name>
        let Some((head, sym)) = line.rsplit_once(' ') else { continue };
        let (Some(name), true) = (sym.strip_prefix("emily_"), head.ends_with(" T")) else { continue };
        let member = head.trim_start_matches(lib).trim_start_matches(':');
        let object = member.split(':').next().unwrap_or_default();
        let family = object.trim_end_matches(".o").rsplit('-').next().unwrap_or_default();
        if families.contains(family) {
            defs.insert((family.to_string(), name.to_string()));
        }
    }
    defs
}

#[test]
fn every_declared_op_is_defined_by_its_family_and_nothing_else_is() {
    let families: HashSet<&str> = signatures().map(|s| s.family).collect();
    let declared: BTreeSet<(String, String)> =
        signatures().map(|s| (s.family.to_string(), s.name.to_string())).collect();
    let defined = shim_definitions(&families);
    assert!(declared.len() > 200, "{} ops declared", declared.len());
    let undefined: Vec<_> = declared.difference(&defined).collect();
    let undeclared: Vec<_> = defined.difference(&declared).collect();
    assert!(
        undefined.is_empty(),
        "declared in src/ops/<family>.ops, not defined in src/cpp/<family>.cc: {undefined:?}"
    );
    assert!(
        undeclared.is_empty(),
        "defined in src/cpp/<family>.cc, not declared in src/ops/<family>.ops: {undeclared:?}"
    );
}

#[test]
fn signatures_are_well_formed() {
    let mut seen = HashSet::new();
    let kinds = ["array", "arrays", "ints", "int", "float", "bool", "dtype"];
    for sig in signatures() {
        assert!(seen.insert(sig.name), "op {} is declared twice", sig.name);
        assert_eq!(sig.args.len(), sig.values.len(), "{sig:?}");
        for ((_, kind), values) in sig.args.iter().zip(sig.values) {
            assert_eq!(kinds.contains(kind), values.is_empty(), "{sig:?}: {kind} {values:?}");
        }
    }
    for family in [creation::SIGNATURES, reduce::SIGNATURES, shape::SIGNATURES, sort::SIGNATURES] {
        for sig in family {
            assert!(seen.contains(sig.name), "{} missing from signatures()", sig.name);
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
    let inv = emily::ops::linalg::inv(&m, s).unwrap();
    let e = common::try_eval_on(&w, inv).err().unwrap();
    assert_eq!(e.kind, emily::ErrorKind::Runtime, "{e}");
    assert!(e.message.contains("failed with error code"), "{e}");
    // a bad argument is still one
    let e = emily::ops::linalg::inv(&x_of(&w), s).err().unwrap();
    assert_eq!(e.kind, emily::ErrorKind::Argument, "{e}");
}

fn x_of(w: &Worker) -> Array {
    creation::zeros(&[2, 3], Dtype::F32, w.stream()).unwrap()
}
