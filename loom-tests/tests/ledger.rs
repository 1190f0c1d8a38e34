//! loom models of the alias ledger: aliases created and released from several threads
//! (BEAM schedulers making binaries, the GC dropping them) while donation checks read it.
//! The holder (the buffer's extra reference) exists exactly while an alias does: no early
//! release (use-after-free), no double release, no leak, also when released holders travel
//! through the worker's drop queue; donation checks never miss an alias held across them.
#![cfg(loom)]
use emily_loom_tests::ledger::Ledger;
use emily_loom_tests::queue::{Next, WorkQueue};
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

/// Counts live holders: the buffer stays allocated while at least one exists.
struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn live(count: &Arc<AtomicUsize>) -> impl FnOnce() -> Live {
    let count = count.clone();
    move || {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count)
    }
}

/// The path a released holder takes: handed to the worker's queue (as `AliasRes::drop`
/// does through `Worker::release`), dropped by the worker thread; dropped in place once the
/// queue is closed.
fn hand_off(q: &WorkQueue<(), Live>, holder: Option<Live>) {
    if let Some(h) = holder {
        if let Err(h) = q.push_drop(h) {
            drop(h);
        }
    }
}

#[test]
fn an_alias_always_sees_a_live_holder_while_releases_go_through_the_worker() {
    loom::model(|| {
        let ledger = Arc::new(Ledger::<Live>::new());
        let holders = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(WorkQueue::<(), Live>::new(2));
        // One binary exists when the race starts.
        ledger.acquire(7, 64, live(&holders));

        // A second binary of the same buffer is made, read, and collected.
        let t1 = {
            let (l, q, h) = (ledger.clone(), q.clone(), holders.clone());
            thread::spawn(move || {
                l.acquire(7, 64, live(&h));
                assert!(h.load(Ordering::SeqCst) >= 1, "alias readable without a holder");
                hand_off(&q, l.release(7));
            })
        };
        // The first binary is read, then collected.
        let t2 = {
            let (l, q, h) = (ledger.clone(), q.clone(), holders.clone());
            thread::spawn(move || {
                assert!(h.load(Ordering::SeqCst) >= 1, "alias readable without a holder");
                hand_off(&q, l.release(7));
            })
        };
        // The worker.
        let worker = {
            let q = q.clone();
            thread::spawn(move || loop {
                match q.next() {
                    Next::Drops(v) => drop(v),
                    Next::Job(()) => {}
                    Next::Closed(_, v) => {
                        drop(v);
                        return;
                    }
                }
            })
        };
        t1.join().unwrap();
        t2.join().unwrap();
        q.close();
        worker.join().unwrap();
        assert_eq!(holders.load(Ordering::SeqCst), 0, "a holder leaked");
        let s = ledger.stats();
        assert_eq!((s.live_aliases, s.aliased_buffers, s.aliased_bytes), (0, 0, 0));
    });
}

#[test]
fn donation_checks_see_an_alias_held_across_them() {
    loom::model(|| {
        let ledger = Arc::new(Ledger::<()>::new());
        // Buffer 1 stays aliased throughout.
        ledger.acquire(1, 8, || ());
        // Another buffer is aliased and released concurrently.
        let churn = {
            let l = ledger.clone();
            thread::spawn(move || {
                l.acquire(2, 8, || ());
                let _ = l.release(2);
            })
        };
        // A donation check (the fast path reads the live-alias count first) and a prevented
        // donation counted, racing with the churn.
        let check = {
            let l = ledger.clone();
            thread::spawn(move || {
                assert!(l.contains(1), "a held alias was missed by the fast path");
                if l.contains(1) {
                    l.note_prevented();
                }
                l.contains(2)
            })
        };
        churn.join().unwrap();
        check.join().unwrap();
        assert!(!ledger.contains(2));
        assert!(ledger.contains(1));
        let s = ledger.stats();
        assert_eq!(s.donations_prevented, 1);
        assert_eq!((s.live_aliases, s.aliased_buffers), (1, 1));
        let _ = ledger.release(1);
        assert!(!ledger.contains(1));
        assert_eq!(ledger.live_aliases(), 0);
    });
}
