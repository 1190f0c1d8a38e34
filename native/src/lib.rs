//! Emily's NIF library: a thin rustler layer over the `emily` core crate.
//!
//! Lazy graph nodes are built directly in the NIF call (a few µs, no thread hop) with the
//! chosen worker's stream; evaluation and reads are queued to that worker, which answers the
//! calling process with `{ref, {:ok, value} | {:error, {kind, message}}}`.
mod aliases;
mod atoms;
mod blas;
mod bridge;
mod error;
mod evaluate;
mod memory;
mod nif_ops;
mod pressure;
mod program;
mod resources;
mod worker;

pub use resources::{AliasRes, TensorRes, WorkerRes};

fn load(env: rustler::Env, _info: rustler::Term) -> bool {
    // OpenBLAS started its pool as this library loaded, sized for the loading thread's CPU set:
    // one CPU on a bound scheduler (`+sbt`).
    emily::blas::fit_threads();
    // MLX's GPU context, and the driver threads it brings, likewise (no-op without a GPU).
    emily::threads::start_gpu();
    // The VM's halt while workers evaluate must not run MLX's destructors under them.
    emily::threads::fast_exit_on_exit();
    env.register::<TensorRes>().is_ok()
        && env.register::<WorkerRes>().is_ok()
        && env.register::<AliasRes>().is_ok()
        && env.register::<program::BuilderRes>().is_ok()
        && env.register::<program::ProgramRes>().is_ok()
        && env.register::<program::ProgramSetRes>().is_ok()
}

rustler::init!("Elixir.Emily.Native", load = load);
