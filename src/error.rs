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
        // The shim records the exception's kind: MLX refuses bad arguments with
        // std::invalid_argument / out_of_range, and fails while running (LAPACK reporting a
        // singular matrix at evaluation, allocation and device failures) with
        // std::runtime_error. Messages about allocation or memory are runtime failures
        // whatever exception carried them.
        let kind = unsafe { crate::ffi::emily_last_error_kind() };
        let runtime = kind != 0 || about_memory(&msg);
        Error { kind: if runtime { ErrorKind::Runtime } else { ErrorKind::Argument }, message: msg }
    }

    /// The error of an op refused while it was being built: a bad argument, unless it is
    /// about memory (a result over the memory limit). MLX validates arguments when an op is
    /// built, mostly with std::invalid_argument but a few with std::runtime_error (bitwise
    /// ops on floats, random numbers of an unsupported dtype): those are bad arguments too.
    /// Numerical failures (a singular matrix, LAPACK failing) only happen at evaluation.
    pub fn at_build(self) -> Self {
        match self.kind {
            ErrorKind::Runtime if !about_memory(&self.message) => Error { kind: ErrorKind::Argument, ..self },
            _ => self,
        }
    }
}

fn about_memory(msg: &str) -> bool {
    msg.contains("allocate") || msg.contains("memory") || msg.contains("Unable to")
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

    #[test]
    fn refusals_while_building_are_bad_arguments_unless_about_memory() {
        let bitwise = Error::runtime("[bitwise_and] Only allowed on integer or boolean types");
        assert_eq!(bitwise.at_build().kind, ErrorKind::Argument);
        let limit = Error::runtime("[emily] to_binary needs a buffer of 8 bytes, over MLX's memory limit");
        assert_eq!(limit.at_build().kind, ErrorKind::Runtime);
        let shape = Error::argument("[matmul] Last dimension of first input");
        assert_eq!(shape.at_build().kind, ErrorKind::Argument);
    }
}
