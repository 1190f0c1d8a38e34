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
    pub fn last() -> Self {
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

impl Error {
    /// MLX refused an op on the GPU that it runs on the CPU (its messages: "[linalg::svd]
    /// This op is not yet supported on the GPU...", "[scatter] GPU scatter does not yet
    /// support int64 ..."). Callers may build the op again on a CPU stream.
    pub fn is_gpu_unsupported(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        m.contains("gpu") && (m.contains("not yet support") || m.contains("not supported on the gpu"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_mlx_gpu_refusals() {
        let svd = Error::argument(
            "[linalg::svd] This op is not yet supported on the GPU. Explicitly pass a CPU stream to run it.",
        );
        let scatter = Error::argument("[scatter] GPU scatter does not yet support int64 for the input or updates.");
        let shape = Error::argument("[matmul] Last dimension of first input with shape (2,3) must match ...");
        assert!(svd.is_gpu_unsupported());
        assert!(scatter.is_gpu_unsupported());
        assert!(!shape.is_gpu_unsupported());
    }
}
