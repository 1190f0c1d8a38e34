//! Direct execution: Emily's CPU workers run MLX's CPU kernels in their own thread.
//!
//! MLX's CPU backend queues every kernel for a thread of the stream's own
//! (`Scheduler::enqueue`) and the evaluating thread waits for it; for small graphs the two
//! thread wake-ups cost 10-40x the work. libmlx calls `Scheduler::enqueue`,
//! `::signal_event` and `::wait_event` through its PLT, so the definitions below, exported
//! under MLX's mangled names from the library that loads libmlx, are the ones it binds to.
//! They hand each call to `src/cpp/direct.cc`, which runs the closure at once when the
//! calling thread stands for the CPU worker owning the stream (with direct execution on)
//! and otherwise passes it on to MLX's own function. Whether libmlx's calls arrive here is
//! probed once; when they do not (static linking, another platform's loader) MLX's stream
//! threads run everything as before.
//!
//! A `Stream` (12 bytes, trivially copyable) arrives in two integer registers and
//! `std::function`/`Event` (non-trivial) by address, on both x86-64 SysV and AArch64
//! AAPCS; other targets do not define these symbols.
use std::sync::atomic::{AtomicBool, Ordering};

static DIRECT: AtomicBool = AtomicBool::new(true);

/// Turns direct execution on or off for CPU workers (from their next job or inline
/// evaluation); returns the previous setting.
pub fn set_direct(on: bool) -> bool {
    DIRECT.swap(on, Ordering::Relaxed)
}

/// The setting of [`set_direct`].
pub fn direct_wanted() -> bool {
    DIRECT.load(Ordering::Relaxed)
}

/// Whether direct execution works in this process: `Some(true)` or `Some(false)` once a CPU
/// worker has asked for it, `None` before.
pub fn direct_available() -> Option<bool> {
    match unsafe { crate::ffi::emily_direct_available() } {
        1 => Some(true),
        0 => Some(false),
        _ => None,
    }
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod entry {
    use crate::ffi;
    use std::ffi::c_void;

    /// `mlx::core::scheduler::Scheduler::enqueue(Stream, std::function<void()>)`.
    ///
    /// # Safety
    /// Called by libmlx only, with MLX's arguments.
    #[export_name = "_ZN3mlx4core9scheduler9Scheduler7enqueueENS0_6StreamESt8functionIFvvEE"]
    pub unsafe extern "C-unwind" fn enqueue(this: *mut c_void, s0: u64, s1: u64, task: *mut c_void) {
        unsafe { ffi::emily_sched_enqueue(this, s0, s1, task) }
    }

    /// `Scheduler::signal_event(Stream, Event, std::function<void(Event&)>)`.
    ///
    /// # Safety
    /// Called by libmlx only, with MLX's arguments.
    #[export_name = "_ZN3mlx4core9scheduler9Scheduler12signal_eventENS0_6StreamENS0_5EventESt8functionIFvRS4_EE"]
    pub unsafe extern "C-unwind" fn signal_event(
        this: *mut c_void,
        s0: u64,
        s1: u64,
        event: *mut c_void,
        task: *mut c_void,
    ) {
        unsafe { ffi::emily_sched_signal_event(this, s0, s1, event, task) }
    }

    /// `Scheduler::check_error(Stream)`: MLX's synchronize calls it after every wait, and
    /// would start a stream thread for a stream that never had one.
    ///
    /// # Safety
    /// Called by libmlx only, with MLX's arguments.
    #[export_name = "_ZN3mlx4core9scheduler9Scheduler11check_errorENS0_6StreamE"]
    pub unsafe extern "C-unwind" fn check_error(this: *mut c_void, s0: u64, s1: u64) {
        unsafe { ffi::emily_sched_check_error(this, s0, s1) }
    }

    /// `Scheduler::wait_event(Stream, Event, std::function<void(Event&)>)`.
    ///
    /// # Safety
    /// Called by libmlx only, with MLX's arguments.
    #[export_name = "_ZN3mlx4core9scheduler9Scheduler10wait_eventENS0_6StreamENS0_5EventESt8functionIFvRS4_EE"]
    pub unsafe extern "C-unwind" fn wait_event(
        this: *mut c_void,
        s0: u64,
        s1: u64,
        event: *mut c_void,
        task: *mut c_void,
    ) {
        unsafe { ffi::emily_sched_wait_event(this, s0, s1, event, task) }
    }
}
