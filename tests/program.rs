//! Program capture and replay (src/cpp/program.cc): graphs built on placeholders are
//! captured once and replayed on new inputs on the owning worker, natively or fused.
use std::sync::Arc;

use emily::ops::{binary, unary};
use emily::program::{is_placeholder, placeholder, Builder, Program};
use emily::{Array, Device, Dtype, ErrorKind, Worker};

mod common;
use common::{f32s, on_worker, read_f32, try_eval_on as eval_on};

fn arr(v: &[f32]) -> Array {
    Array::from_bytes(&f32s(v), &[v.len() as i64], Dtype::F32).unwrap()
}

fn scalar(v: f32) -> Array {
    Array::from_bytes(&f32s(&[v]), &[], Dtype::F32).unwrap()
}

/// Runs `p` on `w` with `inputs`.
fn run_on(w: &Worker, p: &Arc<Program>, inputs: Vec<Array>, fused: bool) -> emily::Result<Vec<Array>> {
    let p = p.clone();
    on_worker(w, move |_| {
        let refs: Vec<&Array> = inputs.iter().collect();
        p.run(&refs, fused)
    })
}

/// Captures `f(inputs)` for placeholders of `shapes` (f32) on `w`'s stream.
fn capture(w: &Worker, shapes: &[&[i64]], f: impl Fn(&[Array]) -> Vec<Array>) -> Arc<Program> {
    let ph: Vec<Array> = shapes.iter().map(|s| placeholder(s, Dtype::F32).unwrap()).collect();
    let mut b = Builder::new().unwrap();
    b.inputs(&ph.iter().collect::<Vec<_>>()).unwrap();
    let _ = w;
    let outs = f(&ph);
    Arc::new(b.finish(&outs.iter().collect::<Vec<_>>()).unwrap())
}

#[test]
fn replays_a_captured_graph_on_new_inputs() {
    let w = Worker::start(Device::Cpu, 64).unwrap();
    let s = w.stream();
    let c = arr(&[100.0, 200.0, 300.0]);
    let p = capture(&w, &[&[3], &[3]], |x| {
        let t = binary::multiply(&x[0], &x[1], s).unwrap();
        let u = binary::add(&t, &c, s).unwrap();
        vec![unary::negative(&u, s).unwrap(), t]
    });
    let st = p.stats();
    assert_eq!((st.tapes, st.nodes, st.constants), (1, 3, 1));
    assert_eq!((p.n_inputs(), p.n_outputs()), (2, 2));
    for k in 1..4 {
        let k = k as f32;
        for fused in [false, true] {
            let out = run_on(&w, &p, vec![arr(&[1.0, 2.0, 3.0]), arr(&[k, k, k])], fused).unwrap();
            assert!(out.iter().all(|a| a.is_available()));
            assert_eq!(read_f32(&out[0]), vec![-(100.0 + k), -(200.0 + 2.0 * k), -(300.0 + 3.0 * k)]);
            assert_eq!(read_f32(&out[1]), vec![k, 2.0 * k, 3.0 * k]);
        }
    }
}

#[test]
fn placeholders_never_evaluate() {
    let w = Worker::start(Device::Cpu, 4).unwrap();
    let x = placeholder(&[2], Dtype::F32).unwrap();
    assert!(is_placeholder(&x));
    let y = unary::exp(&x, w.stream()).unwrap();
    assert!(!is_placeholder(&y));
    let e = eval_on(&w, y).unwrap_err();
    assert!(e.message.contains("without a primitive"), "{}", e.message);
    // The worker is fine afterwards.
    let z = eval_on(&w, unary::negative(&arr(&[1.0]), w.stream()).unwrap()).unwrap();
    assert_eq!(read_f32(&z), vec![-1.0]);
}

#[test]
fn outputs_may_be_inputs_or_constants() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let c = arr(&[7.0]);
    let p = capture(&w, &[&[1]], |x| vec![x[0].try_clone().unwrap(), c.try_clone().unwrap()]);
    assert_eq!(p.stats().nodes, 0);
    let out = run_on(&w, &p, vec![arr(&[3.0])], false).unwrap();
    assert_eq!(read_f32(&out[0]), vec![3.0]);
    assert_eq!(read_f32(&out[1]), vec![7.0]);
}

#[test]
fn shared_subgraphs_are_captured_once() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let s = w.stream();
    let p = capture(&w, &[&[2]], |x| {
        let e = unary::exp(&x[0], s).unwrap();
        let a = binary::add(&e, &e, s).unwrap();
        let m = binary::multiply(&a, &e, s).unwrap();
        vec![m, a]
    });
    assert_eq!(p.stats().nodes, 3);
    let out = run_on(&w, &p, vec![arr(&[0.0, 1.0])], false).unwrap();
    let e1 = 1f32.exp();
    assert_eq!(read_f32(&out[1]), vec![2.0, 2.0 * e1]);
    assert_eq!(read_f32(&out[0]), vec![2.0, 2.0 * e1 * e1]);
}

#[test]
fn wrong_arity_is_an_argument_error() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let s = w.stream();
    let p = capture(&w, &[&[1]], |x| vec![unary::negative(&x[0], s).unwrap()]);
    let e = run_on(&w, &p, vec![], false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Argument);
}

#[test]
fn a_program_runs_only_on_its_worker() {
    let w1 = Worker::start(Device::Cpu, 8).unwrap();
    let w2 = Worker::start(Device::Cpu, 8).unwrap();
    let s = w1.stream();
    let p = capture(&w1, &[&[1]], |x| vec![unary::negative(&x[0], s).unwrap()]);
    let e = run_on(&w2, &p, vec![arr(&[1.0])], false).unwrap_err();
    assert!(e.message.contains("Stream"), "{}", e.message);
    let ok = run_on(&w1, &p, vec![arr(&[1.0])], false).unwrap();
    assert_eq!(read_f32(&ok[0]), vec![-1.0]);
}

#[test]
fn foreign_stream_names_a_node_of_another_worker() {
    let w1 = Worker::start(Device::Cpu, 8).unwrap();
    let w2 = Worker::start(Device::Cpu, 8).unwrap();
    let (s1, s2) = (w1.stream(), w2.stream());
    let p = capture(&w1, &[&[1]], |x| {
        let y = unary::negative(&x[0], s1).unwrap();
        vec![unary::exp(&y, s2).unwrap()]
    });
    assert_eq!(p.foreign_stream(&[s1.index]), Some(s2.index));
    assert_eq!(p.foreign_stream(&[s1.index, s2.index]), None);
}

#[test]
fn a_placeholder_from_another_scope_is_refused() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let outer = placeholder(&[1], Dtype::F32).unwrap();
    let inner = placeholder(&[1], Dtype::F32).unwrap();
    let mut b = Builder::new().unwrap();
    b.inputs(&[&inner]).unwrap();
    let y = binary::add(&inner, &outer, w.stream()).unwrap();
    let e = b.finish(&[&y]).unwrap_err();
    assert!(e.message.contains("another scope"), "{}", e.message);
}

/// while {i, acc} = {i0, a0}, i < limit do {i + 1, acc * 2}
fn doubling_loop(w: &Worker, limit: f32) -> Arc<Program> {
    let s = w.stream();
    let one = scalar(1.0);
    let two = scalar(2.0);
    let lim = scalar(limit);
    let cond = {
        let (i, a) = (placeholder(&[], Dtype::F32).unwrap(), placeholder(&[2], Dtype::F32).unwrap());
        let mut b = Builder::new().unwrap();
        b.inputs(&[&i, &a]).unwrap();
        b.finish(&[&binary::less(&i, &lim, s).unwrap()]).unwrap()
    };
    let body = {
        let (i, a) = (placeholder(&[], Dtype::F32).unwrap(), placeholder(&[2], Dtype::F32).unwrap());
        let mut b = Builder::new().unwrap();
        b.inputs(&[&i, &a]).unwrap();
        b.finish(&[&binary::add(&i, &one, s).unwrap(), &binary::multiply(&a, &two, s).unwrap()]).unwrap()
    };
    let (x, y) = (placeholder(&[], Dtype::F32).unwrap(), placeholder(&[2], Dtype::F32).unwrap());
    let mut b = Builder::new().unwrap();
    b.inputs(&[&x, &y]).unwrap();
    // The initial state is computed (y + 0.5), and y + 0.5 is used again after the loop.
    let half = scalar(0.5);
    let y1 = binary::add(&y, &half, s).unwrap();
    let state = b.materialize(&[&x, &y1]).unwrap();
    let (fi, fa) = (placeholder(&[], Dtype::F32).unwrap(), placeholder(&[2], Dtype::F32).unwrap());
    b.while_loop(&cond, &body, &state, &[&fi, &fa]).unwrap();
    let extra = binary::subtract(&fa, &y1, s).unwrap();
    Arc::new(b.finish(&[&fi, &fa, &extra]).unwrap())
}

#[test]
fn while_loops_run_sub_programs_on_the_worker() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let p = doubling_loop(&w, 5.0);
    let st = p.stats();
    assert_eq!(st.whiles, 1);
    // y + 0.5 is captured once (exported from the first tape), not recomputed after the
    // loop. Nodes: broadcast(0.5) + add; less; add + broadcast(2) + multiply; subtract.
    assert_eq!(st.nodes, 2 + 1 + 3 + 1, "{st:?}");
    for fused in [false, true] {
        let out = run_on(&w, &p, vec![scalar(0.0), arr(&[1.0, -1.0])], fused).unwrap();
        assert_eq!(read_f32(&out[0]), vec![5.0]);
        assert_eq!(read_f32(&out[1]), vec![48.0, -16.0]);
        assert_eq!(read_f32(&out[2]), vec![46.5, -15.5]);
        // Zero iterations.
        let out = run_on(&w, &p, vec![scalar(9.0), arr(&[1.0, -1.0])], fused).unwrap();
        assert_eq!(read_f32(&out[0]), vec![9.0]);
        assert_eq!(read_f32(&out[1]), vec![1.5, -0.5]);
    }
}

#[test]
fn cond_picks_the_first_true_clause_with_free_values() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let s = w.stream();
    let zero = scalar(0.0);
    let ten = scalar(10.0);
    let (x, y) = (placeholder(&[], Dtype::F32).unwrap(), placeholder(&[2], Dtype::F32).unwrap());
    let mut b = Builder::new().unwrap();
    b.inputs(&[&x, &y]).unwrap();
    // Free values of the clauses: x and y * 3 (computed in the parent).
    let y3 = binary::multiply(&y, &scalar(3.0), s).unwrap();
    let free = b.materialize(&[&x, &y3]).unwrap();
    let sub = |f: &dyn Fn(&Array, &Array) -> Array| {
        let (px, py) = (placeholder(&[], Dtype::F32).unwrap(), placeholder(&[2], Dtype::F32).unwrap());
        let mut sb = Builder::new().unwrap();
        sb.inputs(&[&px, &py]).unwrap();
        let out = f(&px, &py);
        sb.finish(&[&out]).unwrap()
    };
    let pred1 = sub(&|px, _| binary::greater(px, &zero, s).unwrap());
    let body1 = sub(&|px, py| binary::multiply(py, &binary::multiply(px, &ten, s).unwrap(), s).unwrap());
    let pred2 = sub(&|px, _| binary::less(px, &scalar(-5.0), s).unwrap());
    let body2 = sub(&|_, py| unary::negative(py, s).unwrap());
    let last = sub(&|px, py| binary::add(py, px, s).unwrap());
    let out = placeholder(&[2], Dtype::F32).unwrap();
    b.cond(
        &[(Some((&pred1, &free)), (&body1, &free)), (Some((&pred2, &free)), (&body2, &free)), (None, (&last, &free))],
        &[&out],
    )
    .unwrap();
    let fin = unary::negative(&out, s).unwrap();
    let p = Arc::new(b.finish(&[&fin]).unwrap());
    assert_eq!(p.stats().conds, 1);
    for fused in [false, true] {
        let r = run_on(&w, &p, vec![scalar(2.0), arr(&[1.0, 2.0])], fused).unwrap();
        assert_eq!(read_f32(&r[0]), vec![-60.0, -120.0]);
        let r = run_on(&w, &p, vec![scalar(-6.0), arr(&[1.0, 2.0])], fused).unwrap();
        assert_eq!(read_f32(&r[0]), vec![3.0, 6.0]);
        let r = run_on(&w, &p, vec![scalar(-1.0), arr(&[1.0, 2.0])], fused).unwrap();
        assert_eq!(read_f32(&r[0]), vec![-2.0, -5.0]);
    }
}

#[test]
fn programs_run_concurrently_on_their_own_workers() {
    let workers: Vec<Arc<Worker>> = (0..4).map(|_| Arc::new(Worker::start(Device::Cpu, 64).unwrap())).collect();
    let handles: Vec<_> = workers
        .iter()
        .cloned()
        .enumerate()
        .map(|(t, w)| {
            std::thread::spawn(move || {
                let s = w.stream();
                let p = capture(&w, &[&[2]], |x| {
                    let mut acc = x[0].try_clone().unwrap();
                    for _ in 0..50 {
                        acc = binary::add(&acc, &x[0], s).unwrap();
                    }
                    vec![acc]
                });
                for i in 0..50 {
                    let v = (t * 100 + i) as f32;
                    let out = run_on(&w, &p, vec![arr(&[v, 1.0])], i % 2 == 0).unwrap();
                    assert_eq!(read_f32(&out[0]), vec![51.0 * v, 51.0]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn constant_subgraphs_are_folded_on_the_first_run() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let s = w.stream();
    let c = arr(&[0.0, 1.0]);
    let p = capture(&w, &[&[2]], |x| {
        // exp(c) * 2 depends on constants only (3 nodes: exp, broadcast of 2, multiply).
        let k = binary::multiply(&unary::exp(&c, s).unwrap(), &scalar(2.0), s).unwrap();
        vec![binary::add(&x[0], &k, s).unwrap(), k]
    });
    assert_eq!((p.stats().nodes, p.stats().constants), (4, 2));
    let e = 1f32.exp();
    for fused in [false, true, false] {
        let out = run_on(&w, &p, vec![arr(&[10.0, 20.0])], fused).unwrap();
        assert_eq!(read_f32(&out[0]), vec![12.0, 20.0 + 2.0 * e]);
        assert_eq!(read_f32(&out[1]), vec![2.0, 2.0 * e]);
        // After the first run only the add is left; its constant is the folded product.
        assert_eq!((p.stats().nodes, p.stats().constants), (1, 1));
    }
}

#[test]
fn equal_nodes_and_equal_small_constants_are_merged() {
    let w = Worker::start(Device::Cpu, 8).unwrap();
    let s = w.stream();
    let p = capture(&w, &[&[3]], |x| {
        // Two separately uploaded 2.0 scalars, two equal exps, two equal products.
        let a = binary::multiply(&unary::exp(&x[0], s).unwrap(), &scalar(2.0), s).unwrap();
        let b = binary::multiply(&unary::exp(&x[0], s).unwrap(), &scalar(2.0), s).unwrap();
        // A different constant must not merge.
        let c = binary::multiply(&unary::exp(&x[0], s).unwrap(), &scalar(3.0), s).unwrap();
        vec![binary::add(&binary::add(&a, &b, s).unwrap(), &c, s).unwrap()]
    });
    // exp; broadcast(2) and multiply; broadcast(3) and multiply; two adds.
    assert_eq!((p.stats().nodes, p.stats().constants), (7, 2), "{:?}", p.primitives());
    let out = run_on(&w, &p, vec![arr(&[0.0, 1.0, 2.0])], false).unwrap();
    let want: Vec<f32> = [0.0f32, 1.0, 2.0].iter().map(|v| 7.0 * v.exp()).collect();
    for (g, w) in read_f32(&out[0]).iter().zip(want) {
        assert!((g - w).abs() <= 1e-5 * w, "{g} vs {w}");
    }
}
