//! loom models of the alias ledger: aliases created and released from several threads
//! (BEAM schedulers making binaries, the GC dropping them) while donation checks read it.
//! The holder (the buffer's extra reference) exists exactly while an alias does: no early
//! release (use-after-free), no double release, no leak.
#![cfg(loom)]
use emily_loom_tests::ledger::Ledger;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Counts its drops; a second drop of one holder would show as more frees than holders made.
struct Holder(Arc<AtomicUsize>);
impl Drop for Holder {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn holder_lives_exactly_while_aliased() {
    loom::model(|| {
        let ledger = Arc::new(Ledger::<Holder>::new());
        let made = Arc::new(AtomicUsize::new(0));
        let freed = Arc::new(AtomicUsize::new(0));
        // One alias exists before the race starts.
        {
            let (made, freed) = (made.clone(), freed.clone());
            ledger.acquire(7, 64, move || {
                made.fetch_add(1, Ordering::SeqCst);
                Holder(freed)
            });
        }

        let t1 = {
            let (l, made, freed) = (ledger.clone(), made.clone(), freed.clone());
            thread::spawn(move || {
                l.acquire(7, 64, move || {
                    made.fetch_add(1, Ordering::SeqCst);
                    Holder(freed)
                });
                drop(l.release(7));
            })
        };
        let t2 = {
            let l = ledger.clone();
            thread::spawn(move || drop(l.release(7)))
        };
        // A donation check racing with both: it reads the ledger without taking part.
        let t3 = {
            let l = ledger.clone();
            thread::spawn(move || {
                let _ = l.is_aliased(7);
            })
        };
        t1.join().unwrap();
        t2.join().unwrap();
        t3.join().unwrap();

        let s = ledger.stats();
        assert_eq!(s.live_aliases, 0);
        assert_eq!(s.aliased_buffers, 0);
        assert_eq!(s.aliased_bytes, 0);
        assert_eq!(s.aliases_created, s.aliases_released);
        // Every holder made was freed exactly once.
        assert_eq!(made.load(Ordering::SeqCst), freed.load(Ordering::SeqCst));
    });
}
