//! Helpers shared by the core crate's integration tests.
#![allow(dead_code)]
use std::sync::mpsc;

use emily::{Array, Ctx, Worker};

pub fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

pub fn read_f32(a: &Array) -> Vec<f32> {
    a.bytes().unwrap().chunks(4).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect()
}

/// Runs `f` on `w`'s thread and waits for its result.
pub fn on_worker<T: Send + 'static>(
    w: &Worker,
    f: impl FnOnce(&Ctx) -> emily::Result<T> + Send + 'static,
) -> emily::Result<T> {
    let (tx, rx) = mpsc::channel();
    w.submit(Box::new(move |ctx| {
        tx.send(ctx.map_err(|e| e.clone()).and_then(f)).unwrap();
    }))
    .unwrap();
    rx.recv().unwrap()
}

/// Evaluates `a` on `w` and returns it.
pub fn try_eval_on(w: &Worker, a: Array) -> emily::Result<Array> {
    on_worker(w, move |_| emily::eval(&[&a]).map(|_| a))
}

pub fn eval_on(w: &Worker, a: Array) -> Array {
    try_eval_on(w, a).unwrap()
}
