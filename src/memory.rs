//! MLX's allocator figures and controls.
use crate::ffi;

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
pub fn clear_cache() {
    unsafe { ffi::emily_clear_cache() }
}
/// Sets MLX's memory limit; returns the previous one.
pub fn set_memory_limit(bytes: usize) -> usize {
    unsafe { ffi::emily_set_memory_limit(bytes) }
}
/// Sets MLX's cache limit; returns the previous one.
pub fn set_cache_limit(bytes: usize) -> usize {
    unsafe { ffi::emily_set_cache_limit(bytes) }
}
