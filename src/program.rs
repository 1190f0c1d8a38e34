//! Programs: MLX graphs captured once and replayed on new inputs (src/cpp/program.cc).
//!
//! A [`Builder`] captures the lazy MLX graph built on [`placeholder`] arrays into a program:
//! tapes of primitives (replayed on new inputs with the same primitives), and `while` /
//! `cond` steps that run sub-programs. A [`Program`] runs with [`Program::run`] on the worker
//! whose stream it was captured with: one call replays every step and evaluates the outputs.
use std::ptr::NonNull;

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{check, Error, Result};
use crate::ffi::{emily_array, emily_arrays, emily_ints};

#[repr(C)]
pub struct emily_builder {
    _private: [u8; 0],
}

#[repr(C)]
pub struct emily_program {
    _private: [u8; 0],
}

extern "C" {
    fn emily_placeholder(shape: emily_ints, dtype: i32, out: *mut *mut emily_array) -> std::ffi::c_int;
    fn emily_is_placeholder(a: *const emily_array) -> std::ffi::c_int;
    fn emily_builder_new(out: *mut *mut emily_builder) -> std::ffi::c_int;
    fn emily_builder_free(b: *mut emily_builder);
    fn emily_builder_inputs(b: *mut emily_builder, arrays: emily_arrays, slots: *mut i64) -> std::ffi::c_int;
    fn emily_builder_materialize(b: *mut emily_builder, arrays: emily_arrays, slots: *mut i64) -> std::ffi::c_int;
    fn emily_builder_while(
        b: *mut emily_builder,
        cond: *const emily_program,
        body: *const emily_program,
        state: emily_ints,
        outs: emily_arrays,
    ) -> std::ffi::c_int;
    fn emily_builder_cond(
        b: *mut emily_builder,
        preds: *const *const emily_program,
        pred_in: *const emily_ints,
        bodies: *const *const emily_program,
        body_in: *const emily_ints,
        n: usize,
        outs: emily_arrays,
    ) -> std::ffi::c_int;
    fn emily_builder_finish(
        b: *mut emily_builder,
        outputs: emily_arrays,
        out: *mut *mut emily_program,
    ) -> std::ffi::c_int;
    fn emily_program_free(p: *mut emily_program);
    fn emily_program_n_inputs(p: *const emily_program) -> usize;
    fn emily_program_foreign_stream(p: *const emily_program, own: *const i32, n_own: usize) -> i32;
    fn emily_program_n_outputs(p: *const emily_program) -> usize;
    /// Writes 9 counts (see program.cc).
    fn emily_program_stats(p: *const emily_program, out: *mut i64);
    fn emily_program_describe(p: *const emily_program, buf: *mut std::ffi::c_char, cap: usize) -> usize;
    fn emily_program_run(
        p: *mut emily_program,
        inputs: emily_arrays,
        fused: i32,
        outs: *mut *mut emily_array,
    ) -> std::ffi::c_int;
}

fn ptrs(arrays: &[&Array]) -> Vec<*const emily_array> {
    arrays.iter().map(|a| a.as_ptr()).collect()
}

fn of(p: &[*const emily_array]) -> emily_arrays {
    emily_arrays { ptr: p.as_ptr(), len: p.len() }
}

/// An array of `shape` and `dtype` with no data and no primitive: a stand-in for a program
/// input while capturing. MLX refuses to evaluate it (or anything built on it).
pub fn placeholder(shape: &[i64], dtype: Dtype) -> Result<Array> {
    Array::from_call(|out| unsafe { emily_placeholder(emily_ints::of(shape), dtype.code(), out) })
}

/// Whether `a` is a placeholder (no primitive, not evaluated).
pub fn is_placeholder(a: &Array) -> bool {
    unsafe { emily_is_placeholder(a.as_ptr()) != 0 }
}

/// A sub-program and the caller's slots it takes as inputs.
pub type Call<'a> = (&'a Program, &'a [i64]);

/// A cond clause: the predicate (absent on the last clause) and the body.
pub type Clause<'a> = (Option<Call<'a>>, Call<'a>);

/// Captures a program. Slots are the program's numbered values.
pub struct Builder(NonNull<emily_builder>);

// A builder is used by one thread at a time (the NIF layer keeps it behind a mutex); it only
// reads the graphs of arrays, never evaluates.
unsafe impl Send for Builder {}

impl Drop for Builder {
    fn drop(&mut self) {
        unsafe { emily_builder_free(self.0.as_ptr()) }
    }
}

impl Builder {
    pub fn new() -> Result<Builder> {
        let mut p = std::ptr::null_mut();
        check(unsafe { emily_builder_new(&mut p) })?;
        NonNull::new(p).map(Builder).ok_or_else(|| Error::runtime("no builder"))
    }

    /// Declares program inputs, in order; returns their slots.
    pub fn inputs(&mut self, arrays: &[&Array]) -> Result<Vec<i64>> {
        let p = ptrs(arrays);
        let mut slots = vec![0i64; p.len()];
        check(unsafe { emily_builder_inputs(self.0.as_ptr(), of(&p), slots.as_mut_ptr()) })?;
        Ok(slots)
    }

    /// Captures what computes `arrays` (from known slots and constants) as a tape step;
    /// returns their slots.
    pub fn materialize(&mut self, arrays: &[&Array]) -> Result<Vec<i64>> {
        let p = ptrs(arrays);
        let mut slots = vec![0i64; p.len()];
        check(unsafe { emily_builder_materialize(self.0.as_ptr(), of(&p), slots.as_mut_ptr()) })?;
        Ok(slots)
    }

    /// Adds a `while` step over the state in `state` slots; `outs` (placeholders) name the
    /// final state.
    pub fn while_loop(&mut self, cond: &Program, body: &Program, state: &[i64], outs: &[&Array]) -> Result<()> {
        let o = ptrs(outs);
        check(unsafe {
            emily_builder_while(self.0.as_ptr(), cond.0.as_ptr(), body.0.as_ptr(), emily_ints::of(state), of(&o))
        })
    }

    /// Adds a `cond` step: clauses `(predicate program and its input slots, body program
    /// and its input slots)`, the last one without a predicate. `outs` (placeholders) name
    /// the result.
    pub fn cond(&mut self, clauses: &[Clause<'_>], outs: &[&Array]) -> Result<()> {
        let preds: Vec<*const emily_program> =
            clauses.iter().map(|(p, _)| p.map_or(std::ptr::null(), |(p, _)| p.0.as_ptr() as *const _)).collect();
        let pred_in: Vec<emily_ints> =
            clauses.iter().map(|(p, _)| p.map_or(emily_ints::of(&[]), |(_, s)| emily_ints::of(s))).collect();
        let bodies: Vec<*const emily_program> = clauses.iter().map(|(_, (b, _))| b.0.as_ptr() as *const _).collect();
        let body_in: Vec<emily_ints> = clauses.iter().map(|(_, (_, s))| emily_ints::of(s)).collect();
        let o = ptrs(outs);
        check(unsafe {
            emily_builder_cond(
                self.0.as_ptr(),
                preds.as_ptr(),
                pred_in.as_ptr(),
                bodies.as_ptr(),
                body_in.as_ptr(),
                clauses.len(),
                of(&o),
            )
        })
    }

    /// Captures the outputs and returns the program. The builder cannot be used afterwards.
    pub fn finish(&mut self, outputs: &[&Array]) -> Result<Program> {
        let o = ptrs(outputs);
        let mut p = std::ptr::null_mut();
        check(unsafe { emily_builder_finish(self.0.as_ptr(), of(&o), &mut p) })?;
        NonNull::new(p).map(Program).ok_or_else(|| Error::runtime("no program"))
    }
}

/// Counts over a program and its sub-programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub steps: usize,
    pub tapes: usize,
    pub nodes: usize,
    pub constants: usize,
    pub whiles: usize,
    pub conds: usize,
    /// The last run's replay (graph building, control flow included) and final
    /// evaluation, in nanoseconds.
    pub last_replay_ns: u64,
    pub last_eval_ns: u64,
    /// Nodes whose cost does not follow from their sizes (factorizations, sorts, FFTs,
    /// convolutions, compiled functions).
    pub heavy: usize,
}

/// A captured program. Runs only on the thread owning the stream it was captured with
/// (its worker); dropping it erases its compiled (fused) functions, which must also happen
/// on that thread.
pub struct Program(NonNull<emily_program>);

// Holds shared_ptrs to primitives and constant arrays; see Array's Send/Sync. Running
// mutates the lazily compiled functions, and happens on the owning worker thread only.
unsafe impl Send for Program {}
unsafe impl Sync for Program {}

impl Drop for Program {
    fn drop(&mut self) {
        unsafe { emily_program_free(self.0.as_ptr()) }
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Program<{} -> {}, {:?}>", self.n_inputs(), self.n_outputs(), self.stats())
    }
}

impl Program {
    pub fn n_inputs(&self) -> usize {
        unsafe { emily_program_n_inputs(self.0.as_ptr()) }
    }

    pub fn n_outputs(&self) -> usize {
        unsafe { emily_program_n_outputs(self.0.as_ptr()) }
    }

    pub fn stats(&self) -> Stats {
        let mut v = [0i64; 9];
        unsafe { emily_program_stats(self.0.as_ptr(), v.as_mut_ptr()) };
        Stats {
            steps: v[0] as usize,
            tapes: v[1] as usize,
            nodes: v[2] as usize,
            constants: v[3] as usize,
            whiles: v[4] as usize,
            conds: v[5] as usize,
            last_replay_ns: v[6] as u64,
            last_eval_ns: v[7] as u64,
            heavy: v[8] as usize,
        }
    }

    /// The first stream index of a node (sub-programs included) outside `own`, if any.
    pub fn foreign_stream(&self, own: &[i32]) -> Option<i32> {
        let i = unsafe { emily_program_foreign_stream(self.0.as_ptr(), own.as_ptr(), own.len()) };
        (i >= 0).then_some(i)
    }

    /// The MLX primitive of every node, sub-programs included (for inspection).
    pub fn primitives(&self) -> Vec<String> {
        let n = unsafe { emily_program_describe(self.0.as_ptr(), std::ptr::null_mut(), 0) };
        let mut buf = vec![0u8; n];
        unsafe { emily_program_describe(self.0.as_ptr(), buf.as_mut_ptr().cast(), n) };
        let s = String::from_utf8_lossy(&buf[..n.saturating_sub(1)]).into_owned();
        s.split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect()
    }

    /// Replays the program on `inputs` and evaluates the outputs. `fused` wraps each tape in
    /// `mlx::core::compile`. Must run on the owning worker thread.
    pub fn run(&self, inputs: &[&Array], fused: bool) -> Result<Vec<Array>> {
        if inputs.len() != self.n_inputs() {
            return Err(Error::argument(format!("program expects {} inputs, got {}", self.n_inputs(), inputs.len())));
        }
        let p = ptrs(inputs);
        let n = self.n_outputs();
        let mut outs = vec![std::ptr::null_mut::<emily_array>(); n];
        let rc = unsafe { emily_program_run(self.0.as_ptr(), of(&p), fused as i32, outs.as_mut_ptr()) };
        let arrays: Vec<Array> = outs
            .into_iter()
            .filter_map(|ptr| {
                NonNull::new(ptr)?;
                Array::from_call(|o| unsafe {
                    *o = ptr;
                    0
                })
                .ok()
            })
            .collect();
        check(rc)?;
        if arrays.len() != n {
            return Err(Error::runtime("program returned too few outputs"));
        }
        Ok(arrays)
    }
}
