//! File regions mapped into memory that stay what they were when mapped, whatever happens
//! to the file.
//!
//! A mapping reads the file's pages, so a file truncated under it raises SIGBUS on the next
//! read (the process dies) and a file rewritten in place changes the bytes under an array
//! MLX believes immutable. Each mapped file therefore holds a read lease (`fcntl(2)`,
//! `F_SETLEASE`): the kernel makes any process that opens the file for writing or truncates
//! it (this one included) wait and signals the lease holder first. A watcher thread then
//! copies every live mapping of the file into anonymous memory at the same address (one
//! `mremap`, so a reader running meanwhile sees the same bytes throughout) and releases the
//! lease; the writer goes on. Renaming another file over it or deleting it needs nothing:
//! the mapping keeps the old inode.
//!
//! Where no lease can be had (the file is open for writing already, it is another user's
//! and the process lacks `CAP_LEASE`, the file system has no leases, or no real-time signal
//! is free for the watcher) the region is read into memory instead: [`Region::Read`].
//!
//! Invariants (checked by `tests/mapped.rs`): a mapping is file-backed only while its file's
//! lease is held; the watcher copies under the registry lock, and a mapping leaves the
//! registry (under the same lock) before it is unmapped.
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// Bytes of mapped regions copied into memory when their file's lease was broken.
static COPIED_ON_CHANGE: AtomicU64 = AtomicU64::new(0);
/// Bytes read into memory because no lease could be had.
static READ_UNLEASED: AtomicU64 = AtomicU64::new(0);
/// File-backed mappings alive.
static MAPPINGS: AtomicUsize = AtomicUsize::new(0);
/// Files whose lease is held.
static LEASED: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Counters of this module (see `Emily.memory_stats/0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Files whose lease is held now.
    pub leased_files: usize,
    /// File-backed mappings alive.
    pub mappings: usize,
    /// Bytes copied into memory when a mapped file was about to change.
    pub copied_on_change: u64,
    /// Bytes read into memory because no lease could be had.
    pub read_unleased: u64,
}

pub fn stats() -> Stats {
    Stats {
        leased_files: LEASED.load(Ordering::Relaxed),
        mappings: MAPPINGS.load(Ordering::Relaxed),
        copied_on_change: COPIED_ON_CHANGE.load(Ordering::Relaxed),
        read_unleased: READ_UNLEASED.load(Ordering::Relaxed),
    }
}

/// `len` bytes of a file from `offset`: mapped under the file's lease, or read.
pub enum Region {
    Mapped(Mapping),
    Read(Vec<u8>),
}

impl AsRef<[u8]> for Region {
    fn as_ref(&self) -> &[u8] {
        match self {
            Region::Mapped(m) => m.as_ref(),
            Region::Read(v) => v,
        }
    }
}

/// Opens the regular file at `path` and maps `len` bytes of it from `offset` (see the module
/// docs; an empty region is read). Errors: not a regular file, the region past its end, an
/// I/O error.
pub fn open(path: &Path, offset: u64, len: usize) -> Result<Region> {
    // A regular file only: opening a FIFO would block, a device has no size.
    let meta = std::fs::metadata(path).map_err(|e| Error::argument(format!("cannot open the file: {e}")))?;
    if !meta.is_file() {
        return Err(Error::argument("not a regular file"));
    }
    let file = File::open(path).map_err(|e| Error::argument(format!("cannot open the file: {e}")))?;
    let (key, size) = key_and_size(&file)?;
    fits(size, offset, len)?;
    if len == 0 {
        return Ok(Region::Read(Vec::new()));
    }
    let mut files = registry().lock().unwrap_or_else(|e| e.into_inner());
    let leased = files.contains_key(&key) || lease::take(&file);
    // Read again under the lease: from here on no one shrinks the file unnoticed.
    fits(key_and_size(&file)?.1, offset, len)?;
    if !leased && lease::GUARDED {
        drop(files);
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, offset)
            .map_err(|e| Error::runtime(format!("reading {len} bytes from {offset}: {e}")))?;
        READ_UNLEASED.fetch_add(len as u64, Ordering::Relaxed);
        return Ok(Region::Read(bytes));
    }
    let page = page_size() as u64;
    let skip = (offset % page) as usize;
    let total = skip + len;
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            (offset - skip as u64) as libc::off_t,
        )
    };
    if base == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        if leased && !files.contains_key(&key) {
            lease::release(&file);
        }
        return Err(Error::runtime(format!("mmap failed: {e}")));
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if leased {
        let entry = files.entry(key).or_insert_with(|| {
            LEASED.fetch_add(1, Ordering::Relaxed);
            Leased { fd: OwnedFd::from(file), regions: HashMap::new() }
        });
        entry.regions.insert(id, (base as usize, total, offset - skip as u64));
    }
    MAPPINGS.fetch_add(1, Ordering::Relaxed);
    Ok(Region::Mapped(Mapping { id, key, base: base as usize, total, skip }))
}

/// The file's (device, inode) and size.
fn key_and_size(file: &File) -> Result<((u64, u64), u64)> {
    let m = file.metadata().map_err(|e| Error::argument(format!("cannot stat the file: {e}")))?;
    Ok(((m.dev(), m.ino()), m.len()))
}

fn fits(size: u64, offset: u64, len: usize) -> Result<()> {
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        return Err(Error::argument(format!("the file has {size} bytes; the region needs {len} bytes from {offset}")));
    }
    Ok(())
}

/// A file region mapped read-only; unmapped on drop.
pub struct Mapping {
    id: u64,
    key: (u64, u64),
    base: usize,
    total: usize,
    skip: usize,
}

// Safety: the memory is read-only and the mapping's address range stays valid (file-backed
// or, after a copy, anonymous) until drop.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts((self.base + self.skip) as *const u8, self.total - self.skip) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        {
            let mut files = registry().lock().unwrap_or_else(|e| e.into_inner());
            let removed = files.get_mut(&self.key).is_some_and(|entry| entry.regions.remove(&self.id).is_some());
            if removed && files[&self.key].regions.is_empty() {
                let entry = files.remove(&self.key).expect("entry");
                LEASED.fetch_sub(1, Ordering::Relaxed);
                lease::release(&entry.fd);
            }
            // Not in the registry: copied by the watcher (which counted it), or never leased
            // (a system without leases).
            if removed || !lease::GUARDED {
                MAPPINGS.fetch_sub(1, Ordering::Relaxed);
            }
        }
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.total) };
    }
}

/// A leased file: the descriptor that holds the lease and the live mappings of the file,
/// id -> (address, length, file offset).
struct Leased {
    fd: OwnedFd,
    regions: HashMap<u64, (usize, usize, u64)>,
}

fn registry() -> &'static Mutex<HashMap<(u64, u64), Leased>> {
    static FILES: OnceLock<Mutex<HashMap<(u64, u64), Leased>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn page_size() -> usize {
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Leases and the watcher thread (Linux).
#[cfg(target_os = "linux")]
mod lease {
    use std::os::fd::AsRawFd;

    pub(super) const GUARDED: bool = true;

    // <asm-generic/fcntl.h>, which the libc crate leaves out.
    const F_SETSIG: libc::c_int = 10;
    const F_SETOWN_EX: libc::c_int = 15;
    const F_OWNER_TID: libc::c_int = 0;
    #[repr(C)]
    struct FOwnerEx {
        kind: libc::c_int,
        pid: libc::pid_t,
    }
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::OnceLock;

    /// Takes a read lease on `file` whose break signals the watcher thread; `false` where the
    /// kernel refuses one.
    pub(super) fn take(file: &impl AsRawFd) -> bool {
        let Some(w) = watcher() else { return false };
        let fd = file.as_raw_fd();
        unsafe {
            if libc::fcntl(fd, F_SETSIG, w.signal) != 0 || libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) != 0 {
                return false;
            }
            // F_SETLEASE made the process the owner; the watcher thread takes the signal.
            let owner = FOwnerEx { kind: F_OWNER_TID, pid: w.tid };
            libc::fcntl(fd, F_SETOWN_EX, &owner as *const FOwnerEx);
        }
        true
    }

    pub(super) fn release(file: &impl AsRawFd) {
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }

    struct Watcher {
        signal: libc::c_int,
        tid: libc::pid_t,
    }

    /// Write end of the pipe the signal handler wakes the watcher through.
    static WAKE: AtomicI32 = AtomicI32::new(-1);

    extern "C" fn on_lease_break(_: libc::c_int) {
        unsafe {
            let errno = *libc::__errno_location();
            let byte = 1u8;
            // Non-blocking: a full pipe already holds a wake-up.
            libc::write(WAKE.load(Ordering::Relaxed), (&byte as *const u8).cast(), 1);
            *libc::__errno_location() = errno;
        }
    }

    /// The watcher thread, started on first use; `None` where no real-time signal is free or
    /// the thread could not start (leases are not used then).
    fn watcher() -> Option<&'static Watcher> {
        static WATCHER: OnceLock<Option<Watcher>> = OnceLock::new();
        WATCHER.get_or_init(start_watcher).as_ref()
    }

    fn start_watcher() -> Option<Watcher> {
        // The signal first: nothing is made when none is free. (Until the pipe exists the
        // handler's write fails harmlessly; no lease is taken before it does.)
        let signal = claim_signal()?;
        let mut fds = [0; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return None;
        }
        let (read_end, write_end) = (fds[0], fds[1]);
        // The reading end blocks: the watcher sleeps in read(2).
        unsafe { libc::fcntl(read_end, libc::F_SETFL, 0) };
        WAKE.store(write_end, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("emily-leases".into())
            .spawn(move || {
                crate::threads::use_process_cpus();
                let _ = tx.send(unsafe { libc::gettid() });
                let mut buf = [0u8; 64];
                loop {
                    let n = unsafe { libc::read(read_end, buf.as_mut_ptr().cast(), buf.len()) };
                    if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                        // a writer waits on this thread: never leave, however read fails
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    copy_broken();
                }
            })
            .ok()?;
        let tid = rx.recv().ok()?;
        Some(Watcher { signal, tid })
    }

    /// Installs the lease-break handler on the first real-time signal no one handles.
    fn claim_signal() -> Option<libc::c_int> {
        for sig in libc::SIGRTMIN() + 1..=libc::SIGRTMAX() {
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
                    continue;
                }
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_lease_break as *const () as usize;
                act.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                if libc::sigaction(sig, &act, std::ptr::null_mut()) == 0 {
                    return Some(sig);
                }
            }
        }
        None
    }

    /// For every file whose lease is being broken: copies its mappings into memory, releases
    /// the lease, forgets the file.
    fn copy_broken() {
        let mut files = super::registry().lock().unwrap_or_else(|e| e.into_inner());
        let broken: Vec<(u64, u64)> = files
            .iter()
            .filter(|(_, l)| unsafe { libc::fcntl(l.fd.as_raw_fd(), libc::F_GETLEASE) } != libc::F_RDLCK)
            .map(|(k, _)| *k)
            .collect();
        for key in broken {
            let entry = files.remove(&key).expect("entry");
            super::LEASED.fetch_sub(1, Ordering::Relaxed);
            for &(base, total, at) in entry.regions.values() {
                match copy_in_place(&entry.fd, base, total, at) {
                    Ok(()) => {
                        super::COPIED_ON_CHANGE.fetch_add(total as u64, Ordering::Relaxed);
                        super::MAPPINGS.fetch_sub(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!("emily: a mapped file is changing and its mapping could not be copied: {e}")
                    }
                }
            }
            release(&entry.fd);
        }
    }

    /// Replaces the file-backed pages at `base` (the file's bytes from `at`, unchanged: the
    /// lease still holds) by anonymous ones holding the same bytes, in one step: a copy read
    /// from the file elsewhere is moved over them.
    fn copy_in_place(fd: &impl AsRawFd, base: usize, total: usize, at: u64) -> std::io::Result<()> {
        unsafe {
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            let tmp = libc::mmap(std::ptr::null_mut(), total, prot, flags, -1, 0);
            if tmp == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            // huge pages where the system has them: a fault per 2 MiB, not per 4 KiB
            libc::madvise(tmp, total, libc::MADV_HUGEPAGE);
            let fail = |e: std::io::Error| {
                libc::munmap(tmp, total);
                Err(e)
            };
            let mut done = 0usize;
            while done < total {
                let at = (at + done as u64) as libc::off_t;
                let n = libc::pread(fd.as_raw_fd(), tmp.cast::<u8>().add(done).cast(), total - done, at);
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return fail(e);
                    }
                } else if n == 0 {
                    return fail(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file is shorter"));
                } else {
                    done += n as usize;
                }
            }
            libc::mprotect(tmp, total, libc::PROT_READ);
            let moved =
                libc::mremap(tmp, total, total, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, base as *mut libc::c_void);
            if moved == libc::MAP_FAILED {
                return fail(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// No leases here: regions are mapped without them.
#[cfg(not(target_os = "linux"))]
mod lease {
    pub(super) const GUARDED: bool = false;

    pub(super) fn take(_: &impl std::os::fd::AsRawFd) -> bool {
        false
    }

    pub(super) fn release(_: &impl std::os::fd::AsRawFd) {}
}
