//! One function per MLX op, generated from per-family tables.
//!
//! Each family file holds one table macro (`unary_table!`, `binary_table!`, ...) listing
//! `name(arg: Kind, ...)`; the same table generates the C ABI declarations and safe wrappers
//! here (via [`mlx_ops!`]) and the NIFs in the `native/` crate. The C++ side of each family
//! is src/cpp/<family>.cc, an X-macro list with the same names. A name in one list but not
//! the other fails at link time (C++) or NIF load time (Elixir), never silently.
//!
//! Argument kinds: `A` array, `AS` list of arrays, `I` list of i64 (shapes, axes),
//! `F` f64, `N` i64, `B` bool, `D` dtype. Every op also takes the stream last, like MLX.

#[doc(hidden)]
#[macro_export]
macro_rules! __ffi_ty {
    (A) => { *const $crate::ffi::emily_array };
    (AS) => { $crate::ffi::emily_arrays };
    (I) => { $crate::ffi::emily_ints };
    (F) => { f64 };
    (N) => { i64 };
    (B) => { bool };
    (D) => { i32 };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __rs_ty {
    (A) => {
        &$crate::Array
    };
    (AS) => {
        &[&$crate::Array]
    };
    (I) => {
        &[i64]
    };
    (F) => {
        f64
    };
    (N) => {
        i64
    };
    (B) => {
        bool
    };
    (D) => {
        $crate::Dtype
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __prep {
    (AS, $x:ident) => {
        let $x: Vec<*const $crate::ffi::emily_array> = $x.iter().map(|a| a.as_ptr()).collect();
    };
    ($k:ident, $x:ident) => {};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conv {
    (A, $x:ident) => {
        $x.as_ptr()
    };
    (AS, $x:ident) => {
        $crate::ffi::emily_arrays { ptr: $x.as_ptr(), len: $x.len() }
    };
    (I, $x:ident) => {
        $crate::ffi::emily_ints::of($x)
    };
    (D, $x:ident) => {
        $x.code()
    };
    ($k:ident, $x:ident) => {
        $x
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __many {
    () => {
        false
    };
    (many) => {
        true
    };
}

/// An op's name, argument kinds (`"A"`, `"AS"`, `"I"`, `"F"`, `"N"`, `"B"`, `"D"`; the
/// stream not included) and whether it returns several arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub name: &'static str,
    pub kinds: &'static [&'static str],
    pub many: bool,
}

/// Every op of every family (for tests that exercise the whole op layer).
pub fn signatures() -> impl Iterator<Item = &'static Signature> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// The families' signature tables; a new family adds its line.
const FAMILIES: &[&[Signature]] = &[
    unary::SIGNATURES,
    binary::SIGNATURES,
    creation::SIGNATURES,
    reduce::SIGNATURES,
    shape::SIGNATURES,
    sort::SIGNATURES,
    index::SIGNATURES,
    linalg::SIGNATURES,
    linalg::cpu::SIGNATURES,
    conv::SIGNATURES,
    fft::SIGNATURES,
    fast::SIGNATURES,
    quantize::SIGNATURES,
    backend_extra::SIGNATURES,
];

/// Generates C ABI declarations and safe wrappers from a family table.
///
/// Single-output ops: `name(args...) -> Result<Array>`; the C function is
/// `int emily_<name>(emily_stream s, args..., emily_array** out)`.
/// Multi-output ops are listed as `name(args...) -> many`: `-> Result<Vec<Array>>`, the C
/// function is `int emily_<name>(emily_stream s, args..., emily_outs outs)`
/// with `outs` receiving each output in turn (any number of them: `split`, `unstack`).
#[macro_export]
macro_rules! mlx_ops {
    ($( $name:ident ( $($arg:ident : $k:ident),* ) $(-> $many:ident)? ; )*) => {
        #[allow(clippy::too_many_arguments)]
        mod raw {
            #[allow(unused_imports)]
            use super::*;
            extern "C" {
                $( $crate::mlx_ops!(@decl $name ( $($arg : $k),* ) $($many)?); )*
            }
        }
        $( $crate::mlx_ops!(@wrap $name ( $($arg : $k),* ) $($many)?); )*
        /// The ops of this family, in table order.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
        /// The ops of this family with their argument kinds, in table order.
        pub const SIGNATURES: &[$crate::ops::Signature] = &[$($crate::ops::Signature {
            name: stringify!($name),
            kinds: &[$(stringify!($k)),*],
            many: $crate::__many!($($many)?),
        }),*];
    };
    (@decl $name:ident ( $($arg:ident : $k:ident),* )) => {
        #[link_name = concat!("emily_", stringify!($name))]
        pub fn $name(s: $crate::ffi::emily_stream, $($arg: $crate::__ffi_ty!($k),)*
                     out: *mut *mut $crate::ffi::emily_array) -> std::ffi::c_int;
    };
    (@decl $name:ident ( $($arg:ident : $k:ident),* ) many) => {
        #[link_name = concat!("emily_", stringify!($name))]
        pub fn $name(s: $crate::ffi::emily_stream, $($arg: $crate::__ffi_ty!($k),)*
                     outs: $crate::ffi::emily_outs) -> std::ffi::c_int;
    };
    (@wrap $name:ident ( $($arg:ident : $k:ident),* )) => {
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $crate::__rs_ty!($k),)* s: $crate::Stream) -> $crate::Result<$crate::Array> {
            $( $crate::__prep!($k, $arg); )*
            $crate::Array::from_call(|out| unsafe { raw::$name(s, $($crate::__conv!($k, $arg),)* out) })
                .map_err($crate::Error::at_build)
        }
    };
    (@wrap $name:ident ( $($arg:ident : $k:ident),* ) many) => {
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $crate::__rs_ty!($k),)* s: $crate::Stream) -> $crate::Result<Vec<$crate::Array>> {
            $( $crate::__prep!($k, $arg); )*
            $crate::ops::collect_many(|outs| unsafe { raw::$name(s, $($crate::__conv!($k, $arg),)* outs) })
                .map_err($crate::Error::at_build)
        }
    };
}

/// Collects the outputs of a multi-output shim call: the shim hands each output to `push`,
/// which takes ownership at once (so outputs handed out before a failure are freed too).
pub fn collect_many(f: impl FnOnce(crate::ffi::emily_outs) -> std::ffi::c_int) -> crate::Result<Vec<crate::Array>> {
    unsafe extern "C" fn push(ctx: *mut std::ffi::c_void, a: *mut crate::ffi::emily_array) {
        let arrays = unsafe { &mut *(ctx as *mut Vec<crate::Array>) };
        if let Some(a) = std::ptr::NonNull::new(a) {
            arrays.push(crate::Array::from_raw(a));
        }
    }
    let mut arrays: Vec<crate::Array> = Vec::new();
    let outs = crate::ffi::emily_outs { ctx: &mut arrays as *mut Vec<crate::Array> as *mut std::ffi::c_void, push };
    let rc = f(outs);
    crate::error::check(rc)?;
    Ok(arrays)
}

pub mod backend_extra;
pub mod binary;
pub mod conv;
pub mod creation;
pub mod fast;
pub mod fft;
pub mod index;
pub mod linalg;
pub mod quantize;
pub mod reduce;
pub mod shape;
pub mod sort;
pub mod unary;
