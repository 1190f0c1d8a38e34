//! MLX's allocator figures and controls, and the C library's malloc thresholds.
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ffi;

/// The mmap threshold [`tune_malloc`] set last; 0 when never.
static MALLOC_MMAP_THRESHOLD: AtomicUsize = AtomicUsize::new(0);

/// glibc's own ceiling for the mmap threshold it raises by itself (and the most `mallopt`
/// takes on 64-bit): 32 MiB.
pub const MALLOC_MMAP_THRESHOLD_MAX: usize = 32 << 20;

#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryStats {
    pub active: usize,
    pub peak: usize,
    pub cache: usize,
    pub limit: usize,
}

pub fn stats() -> MemoryStats {
    unsafe {
        MemoryStats {
            active: ffi::emily_active_memory(),
            peak: ffi::emily_peak_memory(),
            cache: ffi::emily_cache_memory(),
            limit: ffi::emily_get_memory_limit(),
        }
    }
}

pub fn active() -> usize {
    unsafe { ffi::emily_active_memory() }
}
pub fn reset_peak() {
    unsafe { ffi::emily_reset_peak_memory() }
}
/// Frees MLX's cached buffers, then hands free heap pages back to the OS (glibc's
/// `malloc_trim`: buffers below the mmap threshold were freed into the heap).
pub fn clear_cache() {
    unsafe {
        ffi::emily_clear_cache();
        ffi::emily_malloc_trim();
    }
}
/// Sets MLX's memory limit; returns the previous one.
pub fn set_memory_limit(bytes: usize) -> usize {
    unsafe { ffi::emily_set_memory_limit(bytes) }
}
/// Sets MLX's cache limit; returns the previous one.
pub fn set_cache_limit(bytes: usize) -> usize {
    unsafe { ffi::emily_set_cache_limit(bytes) }
}

/// Fixes glibc's malloc mmap threshold at `mmap_threshold` bytes, its trim threshold at
/// twice that and its top pad at glibc's default: the values glibc reaches by itself in a
/// process where nobody called `mallopt` (see `emily_malloc_tune` in memory.cc for why a BEAM
/// needs it). `false` where the C library is not glibc, or for 0 or more than
/// [`MALLOC_MMAP_THRESHOLD_MAX`]. Process-wide.
pub fn tune_malloc(mmap_threshold: usize) -> bool {
    if mmap_threshold == 0 || mmap_threshold > MALLOC_MMAP_THRESHOLD_MAX {
        return false;
    }
    let ok = unsafe { ffi::emily_malloc_tune(mmap_threshold) } == 1;
    if ok {
        MALLOC_MMAP_THRESHOLD.store(mmap_threshold, Ordering::Relaxed);
    }
    ok
}

/// The mmap threshold [`tune_malloc`] set last, if it did.
pub fn malloc_mmap_threshold() -> Option<usize> {
    match MALLOC_MMAP_THRESHOLD.load(Ordering::Relaxed) {
        0 => None,
        t => Some(t),
    }
}
