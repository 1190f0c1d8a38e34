//! Errors raised as Elixir exceptions straight from the NIF (no wrapper needed): an
//! exception struct raised as an error term is what `raise` produces.
use emily::{Error, ErrorKind};
use rustler::{Encoder, Env, Term};

use crate::atoms;

pub struct Exception {
    module: &'static str,
    message: String,
    /// `Emily.Error`'s `:kind` (`:runtime`, `:queue_full`, `:closed`); none for others.
    kind: Option<ErrorKind>,
}

impl Encoder for Exception {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let module = rustler::types::atom::Atom::from_str(env, self.module).expect("atom");
        let mut keys =
            vec![atoms::__struct__().encode(env), atoms::__exception__().encode(env), atoms::message().encode(env)];
        let mut values = vec![module.encode(env), true.encode(env), self.message.encode(env)];
        if let Some(k) = self.kind {
            keys.push(atoms::kind().encode(env));
            values.push(kind_atom(k).encode(env));
        }
        Term::map_from_arrays(env, &keys, &values).expect("exception map")
    }
}

pub fn argument_error(message: String) -> rustler::Error {
    rustler::Error::RaiseTerm(Box::new(Exception { module: "Elixir.ArgumentError", message, kind: None }))
}

/// An `Emily.Error` of kind `:runtime`.
pub fn emily_error(message: String) -> rustler::Error {
    emily_error_of(ErrorKind::Runtime, message)
}

pub fn emily_error_of(kind: ErrorKind, message: String) -> rustler::Error {
    rustler::Error::RaiseTerm(Box::new(Exception { module: "Elixir.Emily.Error", message, kind: Some(kind) }))
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
        kind => emily_error_of(kind, msg),
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
