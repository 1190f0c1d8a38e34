//! The core crate's queue and ledger, compiled on their own for loom.
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p emily-loom-tests --release`.
#[path = "../../src/sync.rs"]
pub mod sync;

#[path = "../../src/queue.rs"]
pub mod queue;

#[path = "../../src/ledger.rs"]
pub mod ledger;
