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
    closed: bool,
}

pub struct WorkQueue<J, D> {
    state: Mutex<State<J, D>>,
    ready: Condvar,
    limit: usize,
}

impl<J, D> WorkQueue<J, D> {
    pub fn new(limit: usize) -> Self {
        WorkQueue {
            state: Mutex::new(State { jobs: VecDeque::new(), drops: Vec::new(), closed: false }),
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
        let mut st = lock(&self.state);
        if st.closed {
            return Err(value);
        }
        st.drops.push(value);
        drop(st);
        self.ready.notify_one();
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
            if !st.drops.is_empty() {
                return Next::Drops(std::mem::take(&mut st.drops));
            }
            if let Some(job) = st.jobs.pop_front() {
                return Next::Job(job);
            }
            st = match self.ready.wait(st) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
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
