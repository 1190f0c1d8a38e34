//! NIFs generated from the core crate's op tables: one NIF per MLX op, taking the same
//! arguments as the op and the worker (stream) last.
use emily::Dtype;
use rustler::{Env, NifResult, Term};

use crate::error::raise;
use crate::resources::{Tensor, TensorRes, WorkerArc};

/// A dtype argument, decoded from an atom (`:f32`, `:bf16`, `:bool`, ...).
pub struct DtypeArg(pub Dtype);

impl<'a> rustler::Decoder<'a> for DtypeArg {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let name = term.atom_to_string().map_err(|_| rustler::Error::BadArg)?;
        Dtype::ALL
            .iter()
            .find(|d| d.name() == name)
            .map(|d| DtypeArg(*d))
            .ok_or_else(|| crate::error::argument_error(format!("unknown dtype :{name}")))
    }
}

// Argument kinds of the op tables, as types (rustler's attribute needs plain types, not
// type macros).
#[allow(clippy::upper_case_acronyms, dead_code)]
mod kinds {
    pub type A = super::Tensor;
    pub type AS = Vec<super::Tensor>;
    pub type I = Vec<i64>;
    pub type F = f64;
    pub type N = i64;
    pub type B = bool;
    pub type D = super::DtypeArg;
}
#[allow(unused_imports)]
use kinds::*;

macro_rules! nif_conv {
    (A, $x:ident) => {
        $x.array()
    };
    (AS, $x:ident) => {
        &$x.iter().map(|t| t.array()).collect::<Vec<&emily::Array>>()[..]
    };
    (I, $x:ident) => {
        &$x[..]
    };
    (D, $x:ident) => {
        $x.0
    };
    ($k:ident, $x:ident) => {
        $x
    };
}

macro_rules! nif_describe {
    (A, $x:ident, $v:ident) => {
        $v.push($x.describe())
    };
    (AS, $x:ident, $v:ident) => {
        for t in $x.iter() {
            $v.push(t.describe())
        }
    };
    (I, $x:ident, $v:ident) => {
        $v.push(format!("{}={:?}", stringify!($x), $x))
    };
    (D, $x:ident, $v:ident) => {
        $v.push(format!("{}={}", stringify!($x), $x.0))
    };
    ($k:ident, $x:ident, $v:ident) => {
        $v.push(format!("{}={}", stringify!($x), $x))
    };
}

/// Builds an op with `build` on `stream`, or on the worker's CPU stream where MLX's GPU
/// cannot run it. The CPU stream belongs to the same worker thread, which evaluates both;
/// MLX orders the two streams' work with its own events. On a GPU worker:
///
/// * float64 (inputs or result): MLX's CUDA and Metal backends have no float64 and fail at
///   evaluation, which can leave the GPU stream unusable; such ops are built on the CPU;
/// * ops MLX refuses to build on the GPU ("not yet supported on the GPU": SVD-based norms,
///   int64 scatter, ...) are built again on the CPU.
///
/// `EMILY_GPU_CPU_FALLBACK=0` turns both off (MLX's own behaviour, for diagnosis).
fn on_gpu_or_cpu<T>(
    s: &WorkerArc,
    stream: emily::Stream,
    f64_in: bool,
    f64_out: impl Fn(&T) -> bool,
    build: impl Fn(emily::Stream) -> emily::Result<T>,
) -> emily::Result<T> {
    if stream.device != emily::Device::Gpu.code() || !cpu_fallback() {
        return build(stream);
    }
    let cpu = s.worker.cpu_stream();
    if f64_in {
        return build(cpu);
    }
    match build(stream) {
        Ok(v) if f64_out(&v) => build(cpu),
        Err(e) if e.is_gpu_unsupported() => build(cpu).map_err(|_| e),
        r => r,
    }
}

fn cpu_fallback() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("EMILY_GPU_CPU_FALLBACK").map(|v| v != "0").unwrap_or(true))
}

fn is_f64(a: &emily::Array) -> bool {
    a.dtype() == Dtype::F64
}

macro_rules! nif_f64 {
    (A, $x:ident) => {
        is_f64($x.array())
    };
    (AS, $x:ident) => {
        $x.iter().any(|t| is_f64(t.array()))
    };
    (D, $x:ident) => {
        $x.0 == Dtype::F64
    };
    ($k:ident, $x:ident) => {
        false
    };
}

/// `nifs!(path::to::family; table...)` defines one NIF per table row, building on the
/// worker's stream; `nifs!(path::to::family, cpu_stream; table...)` builds on its CPU stream
/// (ops MLX runs only on the CPU).
macro_rules! nifs {
    ($family:path; $($rows:tt)*) => { nifs!($family, stream; $($rows)*); };
    ($family:path, $stream:ident; $( $name:ident ( $($arg:ident : $k:ident),* ) $(-> $many:ident)? ; )*) => {
        $( nifs!(@one $family, $stream; $name ( $($arg : $k),* ) $($many)?); )*
    };
    (@one $family:path, $stream:ident; $name:ident ( $($arg:ident : $k:ident),* )) => {
        #[rustler::nif]
        #[allow(clippy::too_many_arguments, clippy::vec_init_then_push)]
        pub fn $name(env: Env, $($arg: $k,)* s: WorkerArc) -> NifResult<Tensor> {
            use $family as family;
            let build = |stream| family::$name($(nif_conv!($k, $arg),)* stream);
            let f64_in = false $(|| nif_f64!($k, $arg))*;
            match on_gpu_or_cpu(&s, s.worker.$stream(), f64_in, |a: &emily::Array| is_f64(a), build) {
                Ok(a) => Ok(TensorRes::arc(env, a, &s.worker)),
                Err(e) => {
                    #[allow(unused_mut, clippy::vec_init_then_push)]
                    let mut inputs: Vec<String> = Vec::new();
                    $( nif_describe!($k, $arg, inputs); )*
                    Err(raise(stringify!($name), e, &inputs))
                }
            }
        }
    };
    (@one $family:path, $stream:ident; $name:ident ( $($arg:ident : $k:ident),* ) many) => {
        #[rustler::nif]
        #[allow(clippy::too_many_arguments, clippy::vec_init_then_push)]
        pub fn $name(env: Env, $($arg: $k,)* s: WorkerArc) -> NifResult<Vec<Tensor>> {
            use $family as family;
            let build = |stream| family::$name($(nif_conv!($k, $arg),)* stream);
            let f64_in = false $(|| nif_f64!($k, $arg))*;
            let f64_out = |v: &Vec<emily::Array>| v.iter().any(is_f64);
            match on_gpu_or_cpu(&s, s.worker.$stream(), f64_in, f64_out, build) {
                Ok(v) => Ok(v.into_iter().map(|a| TensorRes::arc(env, a, &s.worker)).collect()),
                Err(e) => {
                    #[allow(unused_mut, clippy::vec_init_then_push)]
                    let mut inputs: Vec<String> = Vec::new();
                    $( nif_describe!($k, $arg, inputs); )*
                    Err(raise(stringify!($name), e, &inputs))
                }
            }
        }
    };
}

macro_rules! unary_nifs { ($($t:tt)*) => { nifs!(emily::ops::unary; $($t)*); } }
emily::unary_table!(unary_nifs);

macro_rules! binary_nifs { ($($t:tt)*) => { nifs!(emily::ops::binary; $($t)*); } }
emily::binary_table!(binary_nifs);

macro_rules! creation_nifs { ($($t:tt)*) => { nifs!(emily::ops::creation; $($t)*); } }
emily::creation_table!(creation_nifs);

/// `[{name, [kind], many?}]` for every op NIF generated from the tables (kinds as atoms
/// `:A`, `:AS`, `:I`, `:F`, `:N`, `:B`, `:D`; the worker argument not included).
#[rustler::nif]
pub fn op_signatures(env: rustler::Env) -> NifResult<Vec<(rustler::Atom, Vec<rustler::Atom>, bool)>> {
    let atom = |s: &str| rustler::Atom::from_str(env, s);
    emily::ops::signatures()
        .map(|sig| Ok((atom(sig.name)?, sig.kinds.iter().map(|k| atom(k)).collect::<NifResult<Vec<_>>>()?, sig.many)))
        .collect()
}

macro_rules! reduce_nifs { ($($t:tt)*) => { nifs!(emily::ops::reduce; $($t)*); } }
emily::reduce_table!(reduce_nifs);

macro_rules! shape_nifs { ($($t:tt)*) => { nifs!(emily::ops::shape; $($t)*); } }
emily::shape_table!(shape_nifs);

macro_rules! sort_nifs { ($($t:tt)*) => { nifs!(emily::ops::sort; $($t)*); } }
emily::sort_table!(sort_nifs);
macro_rules! index_nifs { ($($t:tt)*) => { nifs!(emily::ops::index; $($t)*); } }
emily::index_table!(index_nifs);

macro_rules! linalg_nifs { ($($t:tt)*) => { nifs!(emily::ops::linalg; $($t)*); } }
emily::linalg_table!(linalg_nifs);

macro_rules! linalg_cpu_nifs { ($($t:tt)*) => { nifs!(emily::ops::linalg::cpu, cpu_stream; $($t)*); } }
emily::linalg_cpu_table!(linalg_cpu_nifs);

macro_rules! conv_nifs { ($($t:tt)*) => { nifs!(emily::ops::conv; $($t)*); } }
emily::conv_table!(conv_nifs);

macro_rules! fft_nifs { ($($t:tt)*) => { nifs!(emily::ops::fft; $($t)*); } }
emily::fft_table!(fft_nifs);

macro_rules! fast_nifs { ($($t:tt)*) => { nifs!(emily::ops::fast; $($t)*); } }
emily::fast_table!(fast_nifs);

macro_rules! quantize_nifs { ($($t:tt)*) => { nifs!(emily::ops::quantize; $($t)*); } }
emily::quantize_table!(quantize_nifs);

macro_rules! backend_extra_nifs { ($($t:tt)*) => { nifs!(emily::ops::backend_extra; $($t)*); } }
emily::backend_extra_table!(backend_extra_nifs);
