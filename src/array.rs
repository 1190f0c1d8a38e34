//! An owned MLX array.
use std::ptr::NonNull;

use crate::dtype::Dtype;
use crate::error::{check, Error, Result};
use crate::ffi;

/// Owns one `mlx::core::array` (a reference-counted handle to a graph node and its data).
pub struct Array(NonNull<ffi::emily_array>);

// An MLX array handle is a shared_ptr to an immutable description; copying, reading
// metadata and reading evaluated data are safe from any thread. Evaluation goes through
// the owning worker (see worker.rs).
unsafe impl Send for Array {}
unsafe impl Sync for Array {}

impl Drop for Array {
    fn drop(&mut self) {
        unsafe { ffi::emily_array_free(self.0.as_ptr()) }
    }
}

impl Array {
    /// Wraps the result of a shim call that returns an array through `out`.
    #[inline]
    pub fn from_call(f: impl FnOnce(*mut *mut ffi::emily_array) -> std::ffi::c_int) -> Result<Array> {
        let mut out: *mut ffi::emily_array = std::ptr::null_mut();
        check(f(&mut out))?;
        NonNull::new(out).map(Array).ok_or_else(|| Error::runtime("MLX returned no array"))
    }

    pub fn as_ptr(&self) -> *const ffi::emily_array {
        self.0.as_ptr()
    }

    /// A second handle to the same array (and buffer).
    pub fn try_clone(&self) -> Result<Array> {
        Array::from_call(|out| unsafe { ffi::emily_array_clone(self.as_ptr(), out) })
    }

    pub fn ndim(&self) -> usize {
        unsafe { ffi::emily_ndim(self.as_ptr()) as usize }
    }

    pub fn shape(&self) -> Vec<i64> {
        let mut v = vec![0i64; self.ndim()];
        unsafe { ffi::emily_shape(self.as_ptr(), v.as_mut_ptr()) };
        v
    }

    pub fn dtype(&self) -> Dtype {
        Dtype::from_code(unsafe { ffi::emily_dtype(self.as_ptr()) }).expect("MLX dtype unknown to Emily")
    }

    pub fn nbytes(&self) -> usize {
        unsafe { ffi::emily_nbytes(self.as_ptr()) }
    }

    pub fn size(&self) -> usize {
        unsafe { ffi::emily_size(self.as_ptr()) }
    }

    /// Whether the array has been evaluated and its data can be read.
    pub fn is_available(&self) -> bool {
        unsafe { ffi::emily_is_available(self.as_ptr()) != 0 }
    }

    pub fn is_row_contiguous(&self) -> bool {
        unsafe { ffi::emily_is_row_contiguous(self.as_ptr()) != 0 }
    }

    pub fn is_donatable(&self) -> bool {
        unsafe { ffi::emily_is_donatable(self.as_ptr()) != 0 }
    }

    /// Identity of the underlying allocation (0 before evaluation).
    pub fn buffer_id(&self) -> usize {
        unsafe { ffi::emily_buffer_id(self.as_ptr()) }
    }

    /// The bytes of an evaluated, row-contiguous array. `None` otherwise.
    pub fn bytes(&self) -> Option<&[u8]> {
        if !self.is_available() || !self.is_row_contiguous() {
            return None;
        }
        let n = self.nbytes();
        if n == 0 {
            return Some(&[]);
        }
        let p = unsafe { ffi::emily_data_ptr(self.as_ptr()) } as *const u8;
        if p.is_null() {
            return None;
        }
        Some(unsafe { std::slice::from_raw_parts(p, n) })
    }

    /// A lazy row-contiguous version of this array (a copy only if it is a strided view).
    pub fn contiguous(&self, s: ffi::emily_stream) -> Result<Array> {
        Array::from_call(|out| unsafe { ffi::emily_array_contiguous(s, self.as_ptr(), out) })
    }

    /// Copies `data` into a new evaluated array (any thread).
    pub fn from_bytes(data: &[u8], shape: &[i64], dtype: Dtype) -> Result<Array> {
        Array::from_call(|out| unsafe {
            ffi::emily_from_bytes(data.as_ptr().cast(), data.len(), ffi::emily_ints::of(shape), dtype.code(), out)
        })
    }

    /// Aliases memory kept alive by `owner` (no copy where the MLX allocator can wrap
    /// foreign memory). `owner` is dropped once MLX releases the memory.
    pub fn from_owner<O: AsRef<[u8]> + Send + 'static>(owner: O, shape: &[i64], dtype: Dtype) -> Result<Array> {
        let bytes = owner.as_ref();
        let n: i64 = shape.iter().product();
        if shape.iter().any(|&d| d < 0) || (n as usize) * dtype.size() != bytes.len() {
            return Err(Error::argument(format!(
                "data has {} bytes but shape {:?} and dtype {} need {}",
                bytes.len(),
                shape,
                dtype,
                (n.max(0) as usize) * dtype.size()
            )));
        }
        let ptr = bytes.as_ptr() as *mut std::ffi::c_void;
        let ctx = Box::into_raw(Box::new(owner)) as *mut std::ffi::c_void;
        unsafe extern "C" fn release<O>(ctx: *mut std::ffi::c_void) {
            drop(unsafe { Box::from_raw(ctx as *mut O) });
        }
        let r = Array::from_call(|out| unsafe {
            ffi::emily_from_external(ptr, ffi::emily_ints::of(shape), dtype.code(), release::<O>, ctx, out)
        });
        if r.is_err() {
            // The shim calls `release` only once it made an array.
            unsafe { release::<O>(ctx) };
        }
        r
    }
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Array<{}{:?}>", self.dtype(), self.shape())
    }
}

/// Evaluates arrays. Must run on the thread that owns their stream.
pub fn eval(arrays: &[&Array]) -> Result<()> {
    let ptrs: Vec<*const ffi::emily_array> = arrays.iter().map(|a| a.as_ptr()).collect();
    check(unsafe { ffi::emily_eval(ffi::emily_arrays { ptr: ptrs.as_ptr(), len: ptrs.len() }) })
}

pub fn async_eval(arrays: &[&Array]) -> Result<()> {
    let ptrs: Vec<*const ffi::emily_array> = arrays.iter().map(|a| a.as_ptr()).collect();
    check(unsafe { ffi::emily_async_eval(ffi::emily_arrays { ptr: ptrs.as_ptr(), len: ptrs.len() }) })
}
