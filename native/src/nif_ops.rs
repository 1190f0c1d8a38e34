//! The op NIFs, generated from src/ops/*.ops: one NIF per MLX op, taking the same
//! arguments as the op and the worker (stream) last.
use emily::Dtype;
use rustler::{Decoder, Env, NifResult, Term};

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

/// A dtype argument of op `op`, decoded from an atom (`:f32`, `:bf16`, `:bool`, ...).
fn dtype_arg(term: Term, op: &str, arg: &str) -> NifResult<Dtype> {
    DtypeArg::decode(term).map(|d| d.0).map_err(|_| {
        let names: Vec<String> = Dtype::ALL.iter().map(|d| format!(":{}", d.name())).collect();
        let got = term.atom_to_string().map(|a| format!(":{a}")).unwrap_or_else(|_| format!("{term:?}"));
        crate::error::argument_error(format!(
            "{op}: {arg} must be a dtype atom, one of {}, got: {got}",
            names.join(", ")
        ))
    })
}

/// An enum argument of op `op`, decoded from an atom naming one of its values.
fn enum_arg<T: emily::ops::OpEnum>(term: Term, op: &str, arg: &str) -> NifResult<T> {
    let name = term.atom_to_string().ok();
    name.as_deref().and_then(T::from_name).ok_or_else(|| {
        let values: Vec<String> = T::VALUES.iter().map(|v| format!(":{v}")).collect();
        crate::error::argument_error(format!(
            "{op}: {arg} must be a {} atom, one of {}, got: {}",
            T::NAME,
            values.join(", "),
            name.map(|n| format!(":{n}")).unwrap_or_else(|| format!("{term:?}"))
        ))
    })
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
///
/// * an empty input (a dimension of size 0) is always built on the CPU: several of MLX's
///   CUDA kernels divide by a dimension on the host before they launch (rows of a norm,
///   a softmax or a logsumexp, FFT batches, matmul groups, gather slices), which ends the
///   process with SIGFPE; on the CPU those ops take empty inputs, and the work is nil.
fn on_gpu_or_cpu<T>(
    s: &WorkerArc,
    stream: emily::Stream,
    inputs: Inputs,
    f64_out: impl Fn(&T) -> bool,
    build: impl Fn(emily::Stream) -> emily::Result<T>,
) -> emily::Result<T> {
    if stream.device != emily::Device::Gpu.code() {
        return build(stream);
    }
    let cpu = s.worker.cpu_stream();
    if inputs.empty {
        return build(cpu);
    }
    if !cpu_fallback() {
        return build(stream);
    }
    if inputs.f64 {
        return build(cpu);
    }
    match build(stream) {
        Ok(v) if f64_out(&v) => build(cpu),
        Err(e) if e.is_gpu_unsupported() => build(cpu).map_err(|_| e),
        r => r,
    }
}

/// What an op's inputs hold that decides where it is built (see `on_gpu_or_cpu`).
#[derive(Clone, Copy)]
struct Inputs {
    /// a float64 input or dtype argument
    f64: bool,
    /// an input with no elements
    empty: bool,
}

fn cpu_fallback() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("EMILY_GPU_CPU_FALLBACK").map(|v| v != "0").unwrap_or(true))
}

fn is_f64(a: &emily::Array) -> bool {
    a.dtype() == Dtype::F64
}

fn array_refs(ts: &[Tensor]) -> Vec<&emily::Array> {
    ts.iter().map(|t| t.array()).collect()
}

fn described(ts: &[Tensor]) -> String {
    ts.iter().map(|t| t.describe()).collect::<Vec<_>>().join(", ")
}

/// The body of every single-output op NIF: builds the op (on the CPU instead where
/// `on_gpu_or_cpu` says so) and wraps the result, or raises naming the op and its inputs.
#[allow(clippy::too_many_arguments)]
fn build_one<'a>(
    env: Env<'a>,
    s: &WorkerArc,
    name: &str,
    stream: emily::Stream,
    inputs_are: Inputs,
    build: impl Fn(emily::Stream) -> emily::Result<emily::Array>,
    inputs: impl FnOnce() -> Vec<String>,
) -> NifResult<Tensor> {
    match on_gpu_or_cpu(s, stream, inputs_are, |a: &emily::Array| is_f64(a), build) {
        Ok(a) => Ok(TensorRes::arc(env, a, &s.worker)),
        Err(e) => Err(raise(name, e, &inputs())),
    }
}

/// `build_one` for an op returning several arrays.
#[allow(clippy::too_many_arguments)]
fn build_many<'a>(
    env: Env<'a>,
    s: &WorkerArc,
    name: &str,
    stream: emily::Stream,
    inputs_are: Inputs,
    build: impl Fn(emily::Stream) -> emily::Result<Vec<emily::Array>>,
    inputs: impl FnOnce() -> Vec<String>,
) -> NifResult<Vec<Tensor>> {
    let f64_out = |v: &Vec<emily::Array>| v.iter().any(is_f64);
    match on_gpu_or_cpu(s, stream, inputs_are, f64_out, build) {
        Ok(v) => Ok(v.into_iter().map(|a| TensorRes::arc(env, a, &s.worker)).collect()),
        Err(e) => Err(raise(name, e, &inputs())),
    }
}

// One NIF per op of src/ops/*.ops, generated by the core crate's build script.
include!(env!("EMILY_NIFS_RS"));

/// `[{family, name, [{arg, kind}], many?, cpu?}]` for every op NIF, as declared in
/// src/ops/*.ops (atoms; an enum argument's kind is `{:enum, name, [value]}`; the worker
/// argument not included).
#[rustler::nif]
pub fn op_signatures(env: rustler::Env) -> NifResult<Vec<Term>> {
    use rustler::Encoder;
    let atom = |s: &str| rustler::Atom::from_str(env, s);
    let mut out = vec![];
    for sig in emily::ops::signatures() {
        let mut args = vec![];
        for ((name, kind), values) in sig.args.iter().zip(sig.values.iter()) {
            let kind = if values.is_empty() {
                atom(kind)?.encode(env)
            } else {
                let vs = values.iter().map(|v| atom(v)).collect::<NifResult<Vec<_>>>()?;
                (atom("enum")?, atom(kind)?, vs).encode(env)
            };
            args.push((atom(name)?, kind).encode(env));
        }
        out.push((atom(sig.family)?, atom(sig.name)?, args, sig.many, sig.cpu).encode(env));
    }
    Ok(out)
}
