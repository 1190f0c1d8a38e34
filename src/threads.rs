//! Where the threads Emily brings about may run (see `src/cpp/threads.cc`).
//!
//! A thread starts with the CPU set of the thread that starts it, and a BEAM run with bound
//! schedulers (`erl +sbt ...`) calls NIFs from threads bound to one CPU each. Emily's
//! workers and the GC pressure thread therefore take the process's CPU set when they start,
//! MLX's stream threads are started with it (`src/cpp/direct.cc`), and OpenBLAS's pool is
//! refitted when the NIF library loads ([`crate::blas::fit_threads`]), as is MLX's GPU
//! context made ([`start_gpu`]: the driver starts threads of its own then).
use crate::ffi;

/// Gives the calling thread the process's CPU set (the main thread's, which the BEAM never
/// binds); `false` where CPU sets do not exist or the call failed.
pub fn use_process_cpus() -> bool {
    unsafe { ffi::emily_thread_use_process_cpus() == 1 }
}

/// CPUs in the process's CPU set; `None` where unknown.
pub fn process_cpu_count() -> Option<usize> {
    usize::try_from(unsafe { ffi::emily_process_cpu_count() }).ok().filter(|&n| n > 0)
}

/// Makes MLX's GPU context, where there is a GPU, from the calling thread with the process's
/// CPU set: the threads the driver starts with it inherit that set. MLX would otherwise make
/// it on its first allocation, in whichever thread (often a bound BEAM scheduler). `true`
/// when there is a GPU.
pub fn start_gpu() -> bool {
    unsafe { ffi::emily_gpu_start() == 1 }
}

/// Makes the process end with `_exit(status)` when it calls `exit()` (the BEAM's halt), before
/// MLX's static destructors run: worker and stream threads still inside MLX would otherwise
/// touch its freed allocator and scheduler and crash the exiting process. Other libraries'
/// exit handlers registered after this call are skipped too; C stdio is flushed. `true` when
/// installed (glibc; once per process, later calls answer the same).
pub fn fast_exit_on_exit() -> bool {
    unsafe { ffi::emily_fast_exit_install() == 1 }
}
