//! The queue in front of a worker thread: a bounded queue of jobs and an unbounded list of
//! values to drop on the worker (handles released by the BEAM). Pure data structure, free
//! of MLX, so `loom-tests/` can model-check it.
use std::collections::VecDeque;

use crate::sync::{lock, Condvar, Mutex};

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Rejected {
    /// The queue holds `limit` jobs already.
    Full,
    /// The worker is shutting down.
    Closed,
}

/// What the worker thread gets from [`WorkQueue::next`].
pub enum Next<J, D> {
    /// Values to drop (always handed out before the next job).
    Drops(Vec<D>),
    Job(J),
    /// The queue was closed: the jobs still queued (to answer with an error) and the last drops.
    Closed(Vec<J>, Vec<D>),
}

struct State<J, D> {
    jobs: VecDeque<J>,
    drops: Vec<D>,
    /// The worker was woken for the drops (or should take them at its next look).
    drops_due: bool,
    closed: bool,
}

/// Lazy drops wake the worker once this many are waiting.
pub const DROP_BATCH: usize = 64;

/// How long lazy drops may wait for the worker's next job before it wakes for them.
pub const DROP_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

pub struct WorkQueue<J, D> {
    state: Mutex<State<J, D>>,
    ready: Condvar,
    limit: usize,
}

impl<J, D> WorkQueue<J, D> {
    pub fn new(limit: usize) -> Self {
        WorkQueue {
            state: Mutex::new(State { jobs: VecDeque::new(), drops: Vec::new(), drops_due: false, closed: false }),
            ready: Condvar::new(),
            limit: limit.max(1),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Queues a job; the job comes back with the reason when it was not queued.
    pub fn push(&self, job: J) -> Result<(), (J, Rejected)> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err((job, Rejected::Closed));
        }
        if st.jobs.len() >= self.limit {
            return Err((job, Rejected::Full));
        }
        st.jobs.push_back(job);
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    /// Hands a value to the worker to drop. Never blocks for long and never fails: once the
    /// queue is closed the value comes back so the caller drops it itself.
    pub fn push_drop(&self, value: D) -> Result<(), D> {
        self.push_drop_lazy(value, true)
    }

    /// [`push_drop`](Self::push_drop) that has the worker drop at once only when `urgent`
    /// or when [`DROP_BATCH`] drops are waiting; otherwise they go with the worker's next
    /// job, to a caller standing in for it ([`take_drops_if_idle`](Self::take_drops_if_idle)),
    /// or after [`DROP_DELAY`]. Each wake-up is a context switch: releasing small handles
    /// one wake-up each would cost the callers more than the drops.
    pub fn push_drop_lazy(&self, value: D, urgent: bool) -> Result<(), D> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(value);
        }
        st.drops.push(value);
        let due = (urgent || st.drops.len() >= DROP_BATCH) && !st.drops_due;
        if due {
            st.drops_due = true;
        }
        // The first drop also wakes a worker sleeping without a deadline, to set one.
        let wake = due || st.drops.len() == 1;
        drop(st);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Blocks until there is something for the worker.
    pub fn next(&self) -> Next<J, D> {
        let mut st = lock(&self.state);
        loop {
            if st.closed {
                let jobs = st.jobs.drain(..).collect();
                let drops = std::mem::take(&mut st.drops);
                return Next::Closed(jobs, drops);
            }
            if !st.drops.is_empty() && (st.drops_due || !st.jobs.is_empty()) {
                st.drops_due = false;
                return Next::Drops(std::mem::take(&mut st.drops));
            }
            if let Some(job) = st.jobs.pop_front() {
                return Next::Job(job);
            }
            if st.drops.is_empty() {
                st = match self.ready.wait(st) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            } else {
                st = match self.ready.wait_timeout(st, DROP_DELAY) {
                    Ok((mut g, t)) => {
                        g.drops_due |= t.timed_out();
                        g
                    }
                    Err(p) => p.into_inner().0,
                };
            }
        }
    }

    /// When no job is queued (and the queue is open), takes the drops handed over so far:
    /// a caller standing in for the worker drops them before its own work, as the worker
    /// would. `None` when a job is waiting or the queue is closed.
    pub fn take_drops_if_idle(&self) -> Option<Vec<D>> {
        let mut st = lock(&self.state);
        if st.closed || !st.jobs.is_empty() {
            return None;
        }
        st.drops_due = false;
        Some(std::mem::take(&mut st.drops))
    }

    /// Closes the queue: later pushes are rejected; the worker receives what is left.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    pub fn len(&self) -> usize {
        lock(&self.state).jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
