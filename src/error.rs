//! Errors from MLX (any C++ exception, caught in the shim) and from Emily's own checks.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad arguments: shapes, dtypes, axes (MLX's invalid_argument and our checks).
    Argument,
    /// MLX failed at run time (allocation failure, unsupported op on a device, ...).
    Runtime,
    /// A worker's queue was full.
    QueueFull,
    /// A worker is shut down.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn argument(msg: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Argument, message: msg.into() }
    }
    pub fn runtime(msg: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Runtime, message: msg.into() }
    }

    /// Reads the shim's thread-local message after a failed call.
    pub(crate) fn last() -> Self {
        let msg = unsafe {
            let p = crate::ffi::emily_last_error();
            if p.is_null() {
                String::from("unknown MLX error")
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        // MLX reports bad arguments with std::invalid_argument / out_of_range, whose
        // messages start with "[op_name]"; allocation and device failures don't.
        let runtime = msg.contains("allocate") || msg.contains("memory") || msg.contains("Unable to");
        Error { kind: if runtime { ErrorKind::Runtime } else { ErrorKind::Argument }, message: msg }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Turns a shim return code into a Result.
#[inline]
pub(crate) fn check(rc: std::ffi::c_int) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::last())
    }
}
