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

/// Most outputs an op returns (svd: u, s, vt; lu: p, l, u; ...).
pub const MAX_OUTPUTS: usize = 4;

/// Generates C ABI declarations and safe wrappers from a family table.
///
/// Single-output ops: `name(args...) -> Result<Array>`; the C function is
/// `int emily_<name>(emily_stream s, args..., emily_array** out)`.
/// Multi-output ops are listed as `name(args...) -> many`: `-> Result<Vec<Array>>`, the C
/// function is `int emily_<name>(emily_stream s, args..., emily_array** outs, size_t* n)`
/// with room for [`MAX_OUTPUTS`].
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
                     outs: *mut *mut $crate::ffi::emily_array, n: *mut usize) -> std::ffi::c_int;
    };
    (@wrap $name:ident ( $($arg:ident : $k:ident),* )) => {
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $crate::__rs_ty!($k),)* s: $crate::Stream) -> $crate::Result<$crate::Array> {
            $( $crate::__prep!($k, $arg); )*
            $crate::Array::from_call(|out| unsafe { raw::$name(s, $($crate::__conv!($k, $arg),)* out) })
        }
    };
    (@wrap $name:ident ( $($arg:ident : $k:ident),* ) many) => {
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $crate::__rs_ty!($k),)* s: $crate::Stream) -> $crate::Result<Vec<$crate::Array>> {
            $( $crate::__prep!($k, $arg); )*
            $crate::ops::collect_many(|outs, n| unsafe { raw::$name(s, $($crate::__conv!($k, $arg),)* outs, n) })
        }
    };
}

/// Collects the outputs of a multi-output shim call.
pub fn collect_many(
    f: impl FnOnce(*mut *mut crate::ffi::emily_array, *mut usize) -> std::ffi::c_int,
) -> crate::Result<Vec<crate::Array>> {
    let mut outs = [std::ptr::null_mut::<crate::ffi::emily_array>(); MAX_OUTPUTS];
    let mut n = 0usize;
    let rc = f(outs.as_mut_ptr(), &mut n);
    // Take ownership of whatever was written, even on failure.
    let arrays: Vec<crate::Array> = outs[..n.min(MAX_OUTPUTS)]
        .iter()
        .filter_map(|&p| {
            crate::Array::from_call(|o| unsafe {
                *o = p;
                0
            })
            .ok()
        })
        .collect();
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
