//! loom models of the worker queue: jobs and drops pushed from several threads while the
//! worker takes them and the queue closes. Every job is either run or answered on close,
//! exactly once; every dropped value is dropped exactly once; nothing is lost.
#![cfg(loom)]
use emily_loom_tests::queue::{Next, WorkQueue};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Counts its own drops.
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn jobs_and_drops_are_each_handled_once_across_close() {
    loom::model(|| {
        let q = Arc::new(WorkQueue::<u32, Counted>::new(4));
        let drops = Arc::new(AtomicUsize::new(0));

        let producer = {
            let (q, drops) = (q.clone(), drops.clone());
            thread::spawn(move || {
                let accepted = q.push(1).is_ok() as usize;
                if let Err(v) = q.push_drop(Counted(drops)) {
                    drop(v); // closed: the caller drops it itself
                }
                accepted
            })
        };
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };

        // The worker.
        let mut handled = 0;
        loop {
            match q.next() {
                Next::Drops(v) => drop(v),
                Next::Job(_) => handled += 1,
                Next::Closed(jobs, v) => {
                    handled += jobs.len();
                    drop(v);
                    break;
                }
            }
        }
        let accepted = producer.join().unwrap();
        closer.join().unwrap();
        // Whatever was accepted before close was run or answered; the value was dropped once.
        assert_eq!(handled, accepted);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn bounded_queue_never_exceeds_its_limit() {
    loom::model(|| {
        let q = Arc::new(WorkQueue::<u32, ()>::new(1));
        let ths: Vec<_> = (0..2)
            .map(|i| {
                let q = q.clone();
                thread::spawn(move || q.push(i).is_ok())
            })
            .collect();
        let ok: usize = ths.into_iter().map(|t| t.join().unwrap() as usize).sum();
        assert_eq!(ok, 1);
        assert_eq!(q.len(), 1);
    });
}

#[test]
fn drops_handed_over_before_a_job_are_dropped_before_it_runs() {
    // A tensor handle released (its array handed to the worker to drop) and then an
    // evaluation queued by the same thread: the worker drops first, so the evaluation sees
    // the array's reference gone (what the donation count relies on).
    loom::model(|| {
        let q = Arc::new(WorkQueue::<u32, Counted>::new(4));
        let drops = Arc::new(AtomicUsize::new(0));
        let producer = {
            let (q, drops) = (q.clone(), drops.clone());
            thread::spawn(move || {
                assert!(q.push_drop(Counted(drops)).is_ok());
                q.push(1).unwrap();
            })
        };
        let mut jobs = 0;
        while jobs == 0 {
            match q.next() {
                Next::Drops(v) => drop(v),
                Next::Job(_) => {
                    assert_eq!(drops.load(Ordering::SeqCst), 1, "job ran before the drop");
                    jobs += 1;
                }
                Next::Closed(..) => unreachable!(),
            }
        }
        producer.join().unwrap();
    });
}

#[test]
fn drops_are_never_lost_when_a_drop_races_with_close() {
    loom::model(|| {
        let q = Arc::new(WorkQueue::<u32, Counted>::new(1));
        let drops = Arc::new(AtomicUsize::new(0));
        let releasers: Vec<_> = (0..2)
            .map(|_| {
                let (q, drops) = (q.clone(), drops.clone());
                thread::spawn(move || {
                    if let Err(v) = q.push_drop(Counted(drops)) {
                        drop(v);
                    }
                })
            })
            .collect();
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };
        loop {
            match q.next() {
                Next::Drops(v) => drop(v),
                Next::Job(_) => {}
                Next::Closed(_, v) => {
                    drop(v);
                    break;
                }
            }
        }
        for r in releasers {
            r.join().unwrap();
        }
        closer.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn lazy_drops_are_never_lost_and_a_caller_standing_in_takes_them_only_when_idle() {
    // Lazy drops (no wake-up per drop) from one thread, a caller standing in for the worker
    // from another (it takes the drops only when no job is queued), a job, and close: every
    // drop is dropped exactly once, by the worker or the stand-in, and the job runs or is
    // handed back at close.
    loom::model(|| {
        let q = Arc::new(WorkQueue::<u32, Counted>::new(2));
        let drops = Arc::new(AtomicUsize::new(0));
        let releaser = {
            let (q, drops) = (q.clone(), drops.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    if let Err(v) = q.push_drop_lazy(Counted(drops.clone()), false) {
                        drop(v);
                    }
                }
            })
        };
        let stand_in = {
            let q = q.clone();
            thread::spawn(move || {
                let _ = q.push(7);
                if let Some(v) = q.take_drops_if_idle() {
                    drop(v);
                }
                q.close();
            })
        };
        let mut jobs = 0;
        loop {
            match q.next() {
                Next::Drops(v) => drop(v),
                Next::Job(j) => {
                    assert_eq!(j, 7);
                    jobs += 1;
                }
                Next::Closed(rest, v) => {
                    jobs += rest.len();
                    drop(v);
                    break;
                }
            }
        }
        releaser.join().unwrap();
        stand_in.join().unwrap();
        // a drop pushed after close comes back to the releaser, which drops it itself
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert_eq!(jobs, 1, "the job runs or comes back at close, once");
    });
}
