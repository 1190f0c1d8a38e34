//! Errors raised as Elixir exceptions straight from the NIF (no wrapper needed): an
//! exception struct raised as an error term is what `raise` produces.
use emily::{Error, ErrorKind};
use rustler::{Encoder, Env, Term};

use crate::atoms;

pub struct Exception {
    module: &'static str,
    message: String,
}

impl Encoder for Exception {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let module = rustler::types::atom::Atom::from_str(env, self.module).expect("atom");
        let keys = [atoms::__struct__().encode(env), atoms::__exception__().encode(env), atoms::message().encode(env)];
        let values = [module.encode(env), true.encode(env), self.message.encode(env)];
        Term::map_from_arrays(env, &keys, &values).expect("exception map")
    }
}

pub fn argument_error(message: String) -> rustler::Error {
    rustler::Error::RaiseTerm(Box::new(Exception { module: "Elixir.ArgumentError", message }))
}

pub fn emily_error(message: String) -> rustler::Error {
    rustler::Error::RaiseTerm(Box::new(Exception { module: "Elixir.Emily.Error", message }))
}

/// Raises for an MLX error in `op`, naming the inputs (`f32[2][3]`, ...).
pub fn raise(op: &str, e: Error, inputs: &[String]) -> rustler::Error {
    let msg = if inputs.is_empty() {
        format!("{op}: {}", e.message)
    } else {
        format!("{op}: {} (inputs: {})", e.message, inputs.join(", "))
    };
    match e.kind {
        ErrorKind::Argument => argument_error(msg),
        _ => emily_error(msg),
    }
}

pub fn kind_atom(k: ErrorKind) -> rustler::Atom {
    match k {
        ErrorKind::Argument => atoms::argument(),
        ErrorKind::Runtime => atoms::runtime(),
        ErrorKind::QueueFull => atoms::queue_full(),
        ErrorKind::Closed => atoms::closed(),
    }
}
