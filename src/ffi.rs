//! Raw declarations of the C ABI in src/cpp/emily.h. Op families declare theirs next to
//! their safe wrappers (src/ops/*.rs).
#![allow(non_camel_case_types)]
use std::ffi::{c_char, c_int, c_void};

#[repr(C)]
pub struct emily_array {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct emily_stream {
    pub index: i32,
    pub device: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct emily_ints {
    pub ptr: *const i64,
    pub len: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct emily_arrays {
    pub ptr: *const *const emily_array,
    pub len: usize,
}

/// Where a multi-output op hands its outputs (`push(ctx, array)`, each owned by the receiver).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct emily_outs {
    pub ctx: *mut c_void,
    pub push: unsafe extern "C" fn(ctx: *mut c_void, a: *mut emily_array),
}

impl emily_ints {
    pub fn of(v: &[i64]) -> Self {
        emily_ints { ptr: v.as_ptr(), len: v.len() }
    }
}

extern "C" {
    pub fn emily_last_error() -> *const c_char;
    pub fn emily_last_error_kind() -> c_int;

    pub fn emily_array_free(a: *mut emily_array);
    pub fn emily_array_clone(a: *const emily_array, out: *mut *mut emily_array) -> c_int;
    pub fn emily_ndim(a: *const emily_array) -> c_int;
    pub fn emily_shape(a: *const emily_array, out: *mut i64);
    pub fn emily_dtype(a: *const emily_array) -> c_int;
    pub fn emily_nbytes(a: *const emily_array) -> usize;
    pub fn emily_size(a: *const emily_array) -> usize;
    pub fn emily_is_available(a: *const emily_array) -> c_int;
    pub fn emily_is_row_contiguous(a: *const emily_array) -> c_int;
    pub fn emily_data_ptr(a: *const emily_array) -> *const c_void;
    pub fn emily_buffer_id(a: *const emily_array) -> usize;
    pub fn emily_is_donatable(a: *const emily_array) -> c_int;

    pub fn emily_device_available(device: i32) -> c_int;
    pub fn emily_device_info(device: i32) -> *const c_char;
    pub fn emily_stream_new(device: i32, out: *mut emily_stream) -> c_int;
    pub fn emily_own_streams(streams: *const i32, n: usize, direct: c_int);
    pub fn emily_direct_available() -> c_int;
    pub fn emily_synchronize(s: emily_stream) -> c_int;
    pub fn emily_mlx_version() -> *const c_char;
    pub fn emily_cpu_kernels(on: c_int) -> c_int;
    pub fn emily_cpu_kernels_isa() -> *const c_char;

    pub fn emily_array_contiguous(s: emily_stream, a: *const emily_array, out: *mut *mut emily_array) -> c_int;
    pub fn emily_eval(arrays: emily_arrays) -> c_int;
    pub fn emily_async_eval(arrays: emily_arrays) -> c_int;

    pub fn emily_from_bytes(
        data: *const c_void,
        nbytes: usize,
        shape: emily_ints,
        dtype: i32,
        out: *mut *mut emily_array,
    ) -> c_int;
    pub fn emily_from_external(
        data: *mut c_void,
        shape: emily_ints,
        dtype: i32,
        release: unsafe extern "C" fn(*mut c_void),
        ctx: *mut c_void,
        aliased: *mut i32,
        out: *mut *mut emily_array,
    ) -> c_int;
    pub fn emily_external_mode() -> c_int;
    pub fn emily_use_count_works() -> c_int;
    pub fn emily_graph_scan(
        roots: emily_arrays,
        own: *const i32,
        n_own: usize,
        flags: c_int,
        ctx: *mut c_void,
        on_foreign: Option<unsafe extern "C" fn(*mut c_void, *mut emily_array, i32, i32)>,
        on_candidate: Option<unsafe extern "C" fn(*mut c_void, usize)>,
        evaluated: *mut c_int,
    ) -> c_int;

    pub fn emily_active_memory() -> usize;
    pub fn emily_peak_memory() -> usize;
    pub fn emily_cache_memory() -> usize;
    pub fn emily_reset_peak_memory();
    pub fn emily_clear_cache();
    pub fn emily_set_memory_limit(limit: usize) -> usize;
    pub fn emily_set_cache_limit(limit: usize) -> usize;
    pub fn emily_get_memory_limit() -> usize;
    pub fn emily_malloc_tune(mmap_threshold: usize) -> c_int;
    pub fn emily_malloc_trim();
    pub fn emily_blas_core(out: *mut c_char, cap: usize) -> c_int;
    pub fn emily_blas_threads() -> c_int;
    pub fn emily_blas_fit_threads() -> c_int;
    pub fn emily_thread_use_process_cpus() -> c_int;
    pub fn emily_process_cpu_count() -> c_int;
    pub fn emily_fast_exit_install() -> c_int;
    pub fn emily_gpu_start() -> c_int;
}

// MLX's scheduler entry points, run by src/cpp/direct.cc (see src/direct.rs). They may
// unwind: an exception from MLX's own functions they pass work on to goes back to libmlx.
extern "C-unwind" {
    pub fn emily_sched_enqueue(this: *mut c_void, s0: u64, s1: u64, task: *mut c_void);
    pub fn emily_sched_signal_event(this: *mut c_void, s0: u64, s1: u64, event: *mut c_void, task: *mut c_void);
    pub fn emily_sched_check_error(this: *mut c_void, s0: u64, s1: u64);
    pub fn emily_sched_wait_event(this: *mut c_void, s0: u64, s1: u64, event: *mut c_void, task: *mut c_void);
}
