//! MLX's memory figures and limits, with the bridge's, the ledger's and the GC accounting's
//! counters (`Emily.memory_stats/0`), and the C library's malloc tuning.
use std::sync::atomic::Ordering;

use rustler::{Atom, Env, NifResult, Term};

use crate::aliases::LEDGER;
use crate::atoms;
use crate::bridge::{BYTES_COPIED, BYTES_REPORTED, EXTERNAL_BYTES, EXTERNAL_LIVE, EXTERNAL_MADE};

/// MLX's allocator figures, the ledger's, the bridge's and the GC accounting's, as a map
/// (see `Emily.memory_stats/0`).
#[rustler::nif]
pub fn memory_stats(env: Env) -> NifResult<Term> {
    let m = emily::memory::stats();
    let l = LEDGER.stats();
    let p = crate::pressure::figures();
    let mapped = emily::mapped::stats();
    let pairs: [(&str, u64); 22] = [
        ("active", m.active as u64),
        ("peak", m.peak as u64),
        ("cache", m.cache as u64),
        ("limit", m.limit as u64),
        ("handles", p.handles as u64),
        ("handle_bytes", p.handle_bytes as u64),
        ("aliased_buffers", l.aliased_buffers as u64),
        ("aliased_bytes", l.aliased_bytes as u64),
        ("live_aliases", l.live_aliases as u64),
        ("aliases_created", l.aliases_created),
        ("aliases_released", l.aliases_released),
        ("donations_prevented", l.donations_prevented),
        ("bytes_copied", BYTES_COPIED.load(Ordering::Relaxed) + mapped.copied_on_change + mapped.read_unleased),
        ("file_leases", mapped.leased_files as u64),
        ("file_mappings", mapped.mappings as u64),
        ("bytes_reported", BYTES_REPORTED.load(Ordering::Relaxed)),
        ("external_arrays", EXTERNAL_LIVE.load(Ordering::Relaxed) as u64),
        ("external_bytes", EXTERNAL_BYTES.load(Ordering::Relaxed) as u64),
        ("external_made", EXTERNAL_MADE.load(Ordering::Relaxed)),
        ("gc_threshold", p.threshold as u64),
        ("pressure_signals", p.signals),
        ("self_collections", p.self_collections),
    ];
    let mut map = atoms::atom_map(env, pairs)?;
    map = map.map_put(atoms::gc_pressure(), p.enabled)?;
    map = map.map_put(atoms::external_aliasing(), emily::external_aliasing())?;
    let mmap_threshold = emily::memory::malloc_mmap_threshold().map(|t| t as u64);
    map = map.map_put(atoms::malloc_mmap_threshold(), mmap_threshold)?;
    Ok(map)
}

#[rustler::nif]
pub fn reset_peak_memory() -> Atom {
    emily::memory::reset_peak();
    atoms::ok()
}

#[rustler::nif]
pub fn clear_cache() -> Atom {
    emily::memory::clear_cache();
    atoms::ok()
}

/// Sets MLX's memory limit in bytes; returns the previous limit.
#[rustler::nif]
pub fn set_memory_limit(bytes: u64) -> u64 {
    emily::memory::set_memory_limit(usize::try_from(bytes).unwrap_or(usize::MAX)) as u64
}

/// Fixes glibc's malloc mmap threshold at `bytes` (trim threshold at twice that, top pad at
/// glibc's default); `false` where the C library is not glibc or `bytes` is out of range
/// (1..=32 MiB).
#[rustler::nif]
pub fn malloc_tune(bytes: u64) -> bool {
    emily::memory::tune_malloc(usize::try_from(bytes).unwrap_or(usize::MAX))
}

/// Sets MLX's cache limit in bytes; returns the previous limit.
#[rustler::nif]
pub fn set_cache_limit(bytes: u64) -> u64 {
    emily::memory::set_cache_limit(usize::try_from(bytes).unwrap_or(usize::MAX)) as u64
}
