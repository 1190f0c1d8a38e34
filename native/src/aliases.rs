//! The alias ledger of the bridge: the buffers BEAM binaries alias, each held (so MLX never
//! donates it) until its last alias is gone (`emily::ledger`, model-checked in loom-tests).
use std::sync::{Arc, LazyLock};

use emily::ledger::Ledger;
use emily::{Array, Worker};

/// Buffers aliased by BEAM binaries, each held (not donatable) until its last alias is gone.
pub static LEDGER: LazyLock<Ledger<Array>> = LazyLock::new(Ledger::new);

pub fn release_alias(key: usize, worker: &Arc<Worker>) {
    if let Some(holder) = LEDGER.release(key) {
        worker.release(holder);
    }
}

/// Counts the donations the ledger prevented in an evaluation that just ran: inputs MLX
/// would have written into but for the ledger's holder (see `emily_graph_scan`).
pub fn note_donation_candidates(buffers: &[usize]) {
    for &b in buffers {
        if LEDGER.contains(b) {
            LEDGER.note_prevented();
        }
    }
}
