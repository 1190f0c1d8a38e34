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

    /// Takes ownership of an array the shim handed out.
    pub(crate) fn from_raw(p: NonNull<ffi::emily_array>) -> Array {
        Array(p)
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

    /// Wraps memory kept alive by `owner` as a new evaluated array: without a copy where
    /// MLX's allocator allows it (see [`external_aliasing`]) and the data is 8-byte aligned,
    /// else with one copy. Returns the array and whether it aliases `owner`'s bytes. `owner`
    /// is dropped once MLX no longer needs the memory (right away after a copy). MLX never
    /// writes into aliased memory: the buffer is not the allocator's, so it is never donated.
    pub fn from_owner<O: AsRef<[u8]> + Send + 'static>(owner: O, shape: &[i64], dtype: Dtype) -> Result<(Array, bool)> {
        let bytes = owner.as_ref();
        let n = shape.iter().try_fold(1usize, |acc, &d| usize::try_from(d).ok().and_then(|d| acc.checked_mul(d)));
        if n.and_then(|n| n.checked_mul(dtype.size())) != Some(bytes.len()) {
            return Err(Error::argument(format!(
                "data has {} bytes but shape {:?} and dtype {} need {}",
                bytes.len(),
                shape,
                dtype,
                n.map_or_else(|| "an invalid size".to_string(), |n| (n * dtype.size()).to_string())
            )));
        }
        let ptr = bytes.as_ptr() as *mut std::ffi::c_void;
        let ctx = Box::into_raw(Box::new(owner)) as *mut std::ffi::c_void;
        unsafe extern "C" fn release<O>(ctx: *mut std::ffi::c_void) {
            drop(unsafe { Box::from_raw(ctx as *mut O) });
        }
        let mut aliased = 0i32;
        // The shim calls `release` exactly once in every case, errors included.
        let a = Array::from_call(|out| unsafe {
            ffi::emily_from_external(
                ptr,
                ffi::emily_ints::of(shape),
                dtype.code(),
                release::<O>,
                ctx,
                &mut aliased,
                out,
            )
        })?;
        Ok((a, aliased != 0))
    }

    /// Address of the first element of an evaluated array (null otherwise). For diagnostics.
    pub fn data_addr(&self) -> usize {
        unsafe { ffi::emily_data_ptr(self.as_ptr()) as usize }
    }
}

/// Whether [`Array::from_owner`] can alias foreign memory: checked once against MLX's
/// allocator (the CPU allocator's buffer layout, or a GPU allocator that wraps memory).
pub fn external_aliasing() -> bool {
    unsafe { ffi::emily_external_mode() != 0 }
}

/// What [`scan_and_eval`] found below the arrays to evaluate.
#[derive(Default)]
pub struct Scan {
    /// Unevaluated nodes on streams other than the worker's own, with their stream: they must
    /// be evaluated by the thread owning that stream first.
    pub foreign: Vec<(Array, crate::Stream)>,
    /// Buffer ids of evaluated inputs that MLX would donate but for exactly one extra owner.
    pub candidates: Vec<usize>,
    /// Whether the arrays were evaluated (no foreign node).
    pub evaluated: bool,
    /// With [`eval_if_cheap`]: the graph was too costly to evaluate in the caller's thread,
    /// nothing was evaluated.
    pub too_costly: bool,
}

/// Walks the unevaluated graph below `arrays` (checking every buffer it will need against
/// MLX's memory limit), then evaluates it when no node belongs to a stream outside `own`.
/// Must run on the thread owning `own`.
pub fn scan_and_eval(arrays: &[&Array], own: &[i32], candidates: bool) -> Result<Scan> {
    scan_eval(arrays, own, candidates, false)
}

/// [`scan_and_eval`] for a graph cheap enough to evaluate without leaving the caller's
/// thread (at most 64 nodes touching at most 2^18 elements, none of them a factorization,
/// sort, convolution, FFT or compiled function); otherwise sets `too_costly` and evaluates
/// nothing. The caller must hold the worker's execution lock.
pub fn eval_if_cheap(arrays: &[&Array], own: &[i32], candidates: bool) -> Result<Scan> {
    scan_eval(arrays, own, candidates, true)
}

fn scan_eval(arrays: &[&Array], own: &[i32], candidates: bool, cheap_only: bool) -> Result<Scan> {
    unsafe extern "C" fn on_foreign(ctx: *mut std::ffi::c_void, a: *mut ffi::emily_array, index: i32, device: i32) {
        let scan = unsafe { &mut *(ctx as *mut Scan) };
        if let Some(a) = std::ptr::NonNull::new(a) {
            scan.foreign.push((Array(a), crate::Stream { index, device }));
        }
    }
    unsafe extern "C" fn on_candidate(ctx: *mut std::ffi::c_void, id: usize) {
        let scan = unsafe { &mut *(ctx as *mut Scan) };
        scan.candidates.push(id);
    }
    let ptrs: Vec<*const ffi::emily_array> = arrays.iter().map(|a| a.as_ptr()).collect();
    let mut scan = Scan::default();
    let mut evaluated = 0;
    let flags = candidates as std::ffi::c_int | 2 | if cheap_only { 4 } else { 0 };
    let rc = unsafe {
        ffi::emily_graph_scan(
            ffi::emily_arrays { ptr: ptrs.as_ptr(), len: ptrs.len() },
            own.as_ptr(),
            own.len(),
            flags,
            &mut scan as *mut Scan as *mut std::ffi::c_void,
            if cheap_only { None } else { Some(on_foreign) },
            Some(on_candidate),
            &mut evaluated,
        )
    };
    check(rc)?;
    scan.evaluated = evaluated > 0;
    scan.too_costly = evaluated < 0;
    Ok(scan)
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
