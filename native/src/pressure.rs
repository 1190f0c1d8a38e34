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
//!
//! That request is asynchronous: a process that makes handles faster than the request
//! travels (a fast GPU) would run past it. So each process's own bytes are also compared
//! with their lowest level since it last collected: once they have grown by twice the
//! threshold, [`pressure_collect_due`] answers `true` and the process collects itself
//! (`Emily.Worker.await/2` asks before every wait for a worker's answer).
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, OnceLock};

use rustler::sys::ErlNifTerm;
use rustler::{Atom, Encoder, Env, LocalPid, NifResult, OwnedEnv};

use crate::atoms;

static HANDLE_BYTES: AtomicUsize = AtomicUsize::new(0);
static HANDLES: AtomicUsize = AtomicUsize::new(0);
/// Lowest `HANDLE_BYTES` since the last request.
static FLOOR: AtomicUsize = AtomicUsize::new(0);
static ENABLED: AtomicBool = AtomicBool::new(true);
static THRESHOLD: AtomicUsize = AtomicUsize::new(256 << 20);
static SIGNALS: AtomicU64 = AtomicU64::new(0);
/// `true` answers of [`pressure_collect_due`].
static SELF_COLLECTIONS: AtomicU64 = AtomicU64::new(0);
/// Holders listed in one request.
const TOP: usize = 4;

/// Bytes per owning process, in shards keyed by the pid's term (an immediate: equal for
/// equal pids in any environment), so that processes making handles rarely share a lock.
const SHARDS: usize = 16;
type Owners = HashMap<ErlNifTerm, Held, BuildHasherDefault<PidHasher>>;

/// A process's live handle bytes, and their lowest level since it last collected itself.
#[derive(Clone, Copy)]
struct Held {
    pid: LocalPid,
    bytes: usize,
    floor: usize,
}
static OWNERS: LazyLock<[Mutex<Owners>; SHARDS]> =
    LazyLock::new(|| std::array::from_fn(|_| Mutex::new(Owners::default())));

/// A process that made handles: its pid and the pid's term, the key of the accounting.
#[derive(Clone, Copy)]
pub struct Owner {
    pid: LocalPid,
    key: ErlNifTerm,
}

impl Owner {
    pub fn of(env: Env) -> Owner {
        let pid = env.pid();
        Owner { pid, key: pid.encode(env).as_c_arg() }
    }

    fn shard(&self) -> &'static Mutex<Owners> {
        let mut h = PidHasher::default();
        self.key.hash(&mut h);
        &OWNERS[(h.finish() >> 60) as usize % SHARDS]
    }
}

fn mix(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Hashes the u64 pid keys with one multiplication.
#[derive(Default)]
pub struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ b as u64);
        }
    }
    fn write_u64(&mut self, k: u64) {
        self.0 = mix(k);
    }
    fn write_usize(&mut self, k: usize) {
        self.0 = mix(k as u64);
    }
}

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
pub fn account(owner: Option<Owner>, bytes: usize) {
    HANDLES.fetch_add(1, Ordering::Relaxed);
    if bytes == 0 {
        return;
    }
    let total = HANDLE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if let Some(o) = owner {
        lock(o.shard()).entry(o.key).or_insert(Held { pid: o.pid, bytes: 0, floor: 0 }).bytes += bytes;
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
pub fn unaccount(owner: Option<Owner>, bytes: usize) {
    HANDLES.fetch_sub(1, Ordering::Relaxed);
    if bytes == 0 {
        return;
    }
    let total = HANDLE_BYTES.fetch_sub(bytes, Ordering::Relaxed) - bytes;
    FLOOR.fetch_min(total, Ordering::Relaxed);
    if let Some(o) = owner {
        let mut owners = lock(o.shard());
        if let Some(h) = owners.get_mut(&o.key) {
            h.bytes = h.bytes.saturating_sub(bytes);
            h.floor = h.floor.min(h.bytes);
            if h.bytes == 0 {
                owners.remove(&o.key);
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
    let mut v: Vec<(LocalPid, usize)> = Vec::new();
    for shard in OWNERS.iter() {
        v.extend(lock(shard).values().map(|h| (h.pid, h.bytes)));
    }
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

/// Makes the calling process the receiver of pressure requests
/// (`{:emily_memory_pressure, {handle_bytes, active, threshold}, [{pid, bytes}]}`).
#[rustler::nif]
pub fn pressure_register(env: Env) -> NifResult<Atom> {
    let pid = env.pid();
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
            .spawn(move || {
                // not the one CPU of a bound scheduler that registered
                emily::threads::use_process_cpus();
                notifier_loop(n)
            })
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
    pub self_collections: u64,
}

pub fn figures() -> Figures {
    Figures {
        handles: HANDLES.load(Ordering::Relaxed),
        handle_bytes: HANDLE_BYTES.load(Ordering::Relaxed),
        threshold: THRESHOLD.load(Ordering::Relaxed),
        enabled: ENABLED.load(Ordering::Relaxed),
        signals: SIGNALS.load(Ordering::Relaxed),
        self_collections: SELF_COLLECTIONS.load(Ordering::Relaxed),
    }
}

/// `[{pid, bytes}]`: the bytes of live handles per process that made them.
#[rustler::nif]
pub fn handle_holders() -> Vec<(LocalPid, u64)> {
    let mut v = Vec::new();
    for shard in OWNERS.iter() {
        v.extend(lock(shard).values().map(|h| (h.pid, h.bytes as u64)));
    }
    v
}

/// Whether the calling process should collect itself now: accounting is on and its live
/// handle bytes have grown by twice the threshold since their lowest level after it last
/// did. Answering `true` counts as that collection (the level is taken as the new lowest;
/// the releases the collection brings lower it).
#[rustler::nif]
pub fn pressure_collect_due(env: Env) -> bool {
    if !ENABLED.load(Ordering::Relaxed) {
        return false;
    }
    let o = Owner::of(env);
    let mut owners = lock(o.shard());
    let Some(h) = owners.get_mut(&o.key) else { return false };
    if h.bytes < h.floor.saturating_add(THRESHOLD.load(Ordering::Relaxed).saturating_mul(2)) {
        return false;
    }
    h.floor = h.bytes;
    SELF_COLLECTIONS.fetch_add(1, Ordering::Relaxed);
    true
}
