//! Synchronisation primitives, swapped for loom's under `cfg(loom)` so that the queue and
//! the ledger can be model-checked (see `loom-tests/`).
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Locks, recovering from poisoning: our critical sections leave the data consistent even
/// if a panic unwinds through them (they only push/pop/insert), and a poisoned lock must
/// never take the VM down.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
