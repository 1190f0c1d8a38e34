//! GC accounting for tensor handles.
//!
//! The BEAM does not see the memory behind a resource term: a tensor handle
//! (`enif_make_resource`) counts as a few words of the process heap however large its MLX
//! array is, so a process that makes and drops handles in a loop may hold gigabytes of dead
//! arrays until its heap fills and it collects. (Binaries from `to_binary` are resource
//! *binaries*: `enif_make_resource_binary` adds their size to the process's virtual binary
//! heap, `OH_OVERHEAD`, so ERTS collects for them on its own.)
//!
//! Emily counts the bytes of every live handle, per owning process (the process that made
//! it), and when the total has grown by `threshold` above its lowest level since the last
//! request, it asks `Emily.Memory.Pressure` (a GenServer) to collect the top holders with
//! `:erlang.garbage_collect(pid, async: ref)`. The request goes out from a notifier thread
//! (never blocking the NIF), at most once per `threshold` bytes of growth.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, OnceLock};

use rustler::{Atom, Encoder, LocalPid, NifResult, OwnedEnv};

use crate::atoms;

static HANDLE_BYTES: AtomicUsize = AtomicUsize::new(0);
static HANDLES: AtomicUsize = AtomicUsize::new(0);
/// Lowest `HANDLE_BYTES` since the last request.
static FLOOR: AtomicUsize = AtomicUsize::new(0);
static ENABLED: AtomicBool = AtomicBool::new(true);
static THRESHOLD: AtomicUsize = AtomicUsize::new(256 << 20);
static SIGNALS: AtomicU64 = AtomicU64::new(0);
/// Holders listed in one request.
const TOP: usize = 4;

static OWNERS: LazyLock<Mutex<HashMap<LocalPid, usize>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

struct Notifier {
    state: Mutex<NotifierState>,
    wake: Condvar,
}

struct NotifierState {
    pending: bool,
    target: Option<LocalPid>,
}

static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a new handle of `bytes` made by `owner`.
pub fn account(owner: Option<LocalPid>, bytes: usize) {
    HANDLES.fetch_add(1, Ordering::Relaxed);
    if bytes == 0 {
        return;
    }
    let total = HANDLE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if let Some(pid) = owner {
        *lock(&OWNERS).entry(pid).or_insert(0) += bytes;
    }
    if ENABLED.load(Ordering::Relaxed) {
        let floor = FLOOR.load(Ordering::Relaxed);
        if total >= floor.saturating_add(THRESHOLD.load(Ordering::Relaxed))
            && FLOOR.compare_exchange(floor, total, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            signal();
        }
    }
}

/// Counts a handle's release.
pub fn unaccount(owner: Option<LocalPid>, bytes: usize) {
    HANDLES.fetch_sub(1, Ordering::Relaxed);
    if bytes == 0 {
        return;
    }
    let total = HANDLE_BYTES.fetch_sub(bytes, Ordering::Relaxed) - bytes;
    FLOOR.fetch_min(total, Ordering::Relaxed);
    if let Some(pid) = owner {
        let mut owners = lock(&OWNERS);
        if let Some(b) = owners.get_mut(&pid) {
            *b = b.saturating_sub(bytes);
            if *b == 0 {
                owners.remove(&pid);
            }
        }
    }
}

fn signal() {
    if let Some(n) = NOTIFIER.get() {
        let mut st = lock(&n.state);
        if st.target.is_some() {
            st.pending = true;
            SIGNALS.fetch_add(1, Ordering::Relaxed);
            n.wake.notify_one();
        }
    }
}

/// The top holders, largest first.
fn top_holders() -> Vec<(LocalPid, usize)> {
    let owners = lock(&OWNERS);
    let mut v: Vec<(LocalPid, usize)> = owners.iter().map(|(p, b)| (*p, *b)).collect();
    drop(owners);
    v.sort_unstable_by_key(|h| std::cmp::Reverse(h.1));
    v.truncate(TOP);
    v
}

fn notifier_loop(n: &'static Notifier) {
    let mut env = OwnedEnv::new();
    loop {
        let target = {
            let mut st = lock(&n.state);
            while !st.pending {
                st = n.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.pending = false;
            st.target
        };
        let Some(target) = target else { continue };
        let holders = top_holders();
        let total = HANDLE_BYTES.load(Ordering::Relaxed);
        let threshold = THRESHOLD.load(Ordering::Relaxed);
        let active = emily::memory::active();
        let _ = env.send_and_clear(&target, |env| {
            let holders: Vec<_> = holders.iter().map(|(p, b)| (p.encode(env), *b as u64)).collect();
            (atoms::emily_memory_pressure(), (total as u64, active as u64, threshold as u64), holders).encode(env)
        });
    }
}

/// Makes `pid` the receiver of pressure requests
/// (`{:emily_memory_pressure, {handle_bytes, active, threshold}, [{pid, bytes}]}`).
#[rustler::nif]
pub fn pressure_register(pid: LocalPid) -> NifResult<Atom> {
    let n = NOTIFIER.get_or_init(|| Notifier {
        state: Mutex::new(NotifierState { pending: false, target: None }),
        wake: Condvar::new(),
    });
    let first = {
        let mut st = lock(&n.state);
        let first = st.target.is_none();
        st.target = Some(pid);
        first
    };
    static STARTED: AtomicBool = AtomicBool::new(false);
    if first && !STARTED.swap(true, Ordering::SeqCst) {
        std::thread::Builder::new()
            .name("emily-pressure".into())
            .spawn(move || notifier_loop(n))
            .map_err(|e| crate::error::emily_error(format!("pressure_register: cannot start thread: {e}")))?;
    }
    Ok(atoms::ok())
}

/// Sets the growth (bytes) of handle memory that triggers a request, and whether requests
/// are made at all. Returns the previous `{threshold, enabled}`.
#[rustler::nif]
pub fn pressure_configure(threshold: u64, enabled: bool) -> (u64, bool) {
    let t = usize::try_from(threshold).unwrap_or(usize::MAX).max(1);
    let old_t = THRESHOLD.swap(t, Ordering::Relaxed);
    let old_e = ENABLED.swap(enabled, Ordering::Relaxed);
    FLOOR.store(HANDLE_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
    (old_t as u64, old_e)
}

pub struct Figures {
    pub handles: usize,
    pub handle_bytes: usize,
    pub threshold: usize,
    pub enabled: bool,
    pub signals: u64,
}

pub fn figures() -> Figures {
    Figures {
        handles: HANDLES.load(Ordering::Relaxed),
        handle_bytes: HANDLE_BYTES.load(Ordering::Relaxed),
        threshold: THRESHOLD.load(Ordering::Relaxed),
        enabled: ENABLED.load(Ordering::Relaxed),
        signals: SIGNALS.load(Ordering::Relaxed),
    }
}

/// Bytes of live handles made by `pid` (0 when none).
#[rustler::nif]
pub fn handle_bytes_of(pid: LocalPid) -> u64 {
    lock(&OWNERS).get(&pid).copied().unwrap_or(0) as u64
}
