//! The donation ledger.
//!
//! MLX may *donate* an input buffer to an op's output (write the result in place) when it
//! holds the only reference to the array and its data. While a BEAM binary aliases the bytes
//! of a buffer, that must not happen. The ledger keeps one *holder* (a clone of the array)
//! per aliased buffer, so the buffer's use count stays above one, and counts the aliases:
//! the holder is released when the last aliasing binary has been collected.
//!
//! Generic over the holder so that `loom-tests/` can model-check it without MLX.
use std::collections::HashMap;

use crate::sync::{lock, AtomicU64, AtomicUsize, Mutex, Ordering};

struct Entry<H> {
    aliases: usize,
    bytes: usize,
    _holder: H,
}

/// A snapshot of the ledger's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// Buffers aliased by at least one BEAM binary now.
    pub aliased_buffers: usize,
    /// Bytes of those buffers.
    pub aliased_bytes: usize,
    /// Live aliases (binaries) now.
    pub live_aliases: usize,
    pub aliases_created: u64,
    pub aliases_released: u64,
    /// Times an op would have written into an aliased buffer and got a fresh one instead.
    pub donations_prevented: u64,
}

pub struct Ledger<H> {
    entries: Mutex<HashMap<usize, Entry<H>>>,
    aliased_bytes: AtomicUsize,
    live_aliases: AtomicUsize,
    created: AtomicU64,
    released: AtomicU64,
    prevented: AtomicU64,
}

impl<H> Default for Ledger<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H> Ledger<H> {
    pub fn new() -> Self {
        Ledger {
            entries: Mutex::new(HashMap::new()),
            aliased_bytes: AtomicUsize::new(0),
            live_aliases: AtomicUsize::new(0),
            created: AtomicU64::new(0),
            released: AtomicU64::new(0),
            prevented: AtomicU64::new(0),
        }
    }

    /// Records one more alias of buffer `key` (`bytes` long). `holder` is called only for
    /// the first alias of a buffer; the ledger keeps what it returns until the last alias
    /// is released. Returns true when this is the buffer's first alias.
    pub fn acquire(&self, key: usize, bytes: usize, holder: impl FnOnce() -> H) -> bool {
        let mut map = lock(&self.entries);
        self.created.fetch_add(1, Ordering::Relaxed);
        self.live_aliases.fetch_add(1, Ordering::Release);
        if let Some(e) = map.get_mut(&key) {
            e.aliases += 1;
            return false;
        }
        map.insert(key, Entry { aliases: 1, bytes, _holder: holder() });
        self.aliased_bytes.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// Releases one alias of `key`. Returns the holder when it was the last one, for the
    /// caller to drop where it must (an MLX array on its worker thread). Releasing a key
    /// that holds no alias is a no-op returning `None`.
    pub fn release(&self, key: usize) -> Option<H> {
        let mut map = lock(&self.entries);
        let last = match map.get_mut(&key) {
            None => return None,
            Some(e) => {
                e.aliases -= 1;
                e.aliases == 0
            }
        };
        self.released.fetch_add(1, Ordering::Relaxed);
        self.live_aliases.fetch_sub(1, Ordering::Release);
        if !last {
            return None;
        }
        let e = map.remove(&key)?;
        self.aliased_bytes.fetch_sub(e.bytes, Ordering::Relaxed);
        Some(e._holder)
    }

    /// Live aliases of all buffers: one atomic load, for fast paths that skip the ledger
    /// entirely while nothing is aliased.
    pub fn live_aliases(&self) -> usize {
        self.live_aliases.load(Ordering::Acquire)
    }

    /// Whether buffer `key` is aliased now. Cheap while nothing is aliased at all.
    pub fn contains(&self, key: usize) -> bool {
        self.live_aliases() > 0 && self.is_aliased(key)
    }

    pub fn aliases(&self, key: usize) -> usize {
        lock(&self.entries).get(&key).map_or(0, |e| e.aliases)
    }

    pub fn is_aliased(&self, key: usize) -> bool {
        self.aliases(key) > 0
    }

    /// Counts a donation the ledger's holder prevented.
    pub fn note_prevented(&self) {
        self.prevented.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> LedgerStats {
        let map = lock(&self.entries);
        LedgerStats {
            aliased_buffers: map.len(),
            aliased_bytes: self.aliased_bytes.load(Ordering::Relaxed),
            live_aliases: self.live_aliases.load(Ordering::Relaxed),
            aliases_created: self.created.load(Ordering::Relaxed),
            aliases_released: self.released.load(Ordering::Relaxed),
            donations_prevented: self.prevented.load(Ordering::Relaxed),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn first_alias_creates_holder_last_release_returns_it() {
        let l: Ledger<Arc<u8>> = Ledger::new();
        let h = Arc::new(7u8);
        assert!(l.acquire(1, 100, || h.clone()));
        assert!(!l.acquire(1, 100, || panic!("holder made twice")));
        assert_eq!(Arc::strong_count(&h), 2);
        assert_eq!(l.aliases(1), 2);
        assert_eq!(l.stats().aliased_bytes, 100);
        assert!(l.release(1).is_none());
        let back = l.release(1).expect("holder back on last release");
        drop(back);
        assert_eq!(Arc::strong_count(&h), 1);
        let s = l.stats();
        assert_eq!((s.aliased_buffers, s.aliased_bytes, s.live_aliases), (0, 0, 0));
        assert_eq!((s.aliases_created, s.aliases_released), (2, 2));
    }

    #[test]
    fn release_of_unknown_key_is_noop() {
        let l: Ledger<()> = Ledger::new();
        assert!(l.release(42).is_none());
        assert_eq!(l.stats(), LedgerStats::default());
    }

    #[test]
    fn buffers_are_independent() {
        let l: Ledger<u32> = Ledger::new();
        l.acquire(1, 10, || 1);
        l.acquire(2, 20, || 2);
        assert_eq!(l.stats().aliased_bytes, 30);
        assert_eq!(l.release(2), Some(2));
        assert!(l.is_aliased(1));
        assert!(!l.is_aliased(2));
    }
}
