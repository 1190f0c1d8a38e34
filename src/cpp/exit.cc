// The process's exit while Emily's threads run.
//
// exit() (what the BEAM's halt ends in) runs the handlers registered with atexit/on_exit
// and the C++ static destructors, newest first, while worker threads, MLX's stream threads
// and other BEAM threads may still be inside MLX. MLX's process-wide objects (its allocator,
// its scheduler) are statics: a thread that touches one after its destructor ran crashes
// the exiting process (seen: SIGSEGV in CommonAllocator::malloc under a worker's eval).
// emily_fast_exit_install() makes those objects exist, then registers a handler, so the
// handler runs before their destructors: it flushes C stdio and ends the process with
// _exit(status). Other libraries' later exit handlers are skipped with them. MLX makes
// more statics on first use (a GPU backend's device and allocator objects, its JIT kernel
// and cuBLAS caches, made during the first evaluations), so the handler is registered again
// after each of the first 1024 evaluations, then after the 2048th, 4096th, ...: the newest
// registration runs first, and a long-lived process holds about 1050 registrations
// (glibc keeps 32 bytes for each).
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unistd.h>

#include "mlx/allocator.h"
#include "mlx/scheduler.h"
#include "shim.hpp"

namespace {

std::atomic<bool> installed{false};
std::atomic<uint64_t> evaluations{0};

#if defined(__GLIBC__)
void fast_exit(int status, void*) {
  std::fflush(nullptr);
  _exit(status);
}
#endif

}  // namespace

namespace emily {

void note_evaluation() {
  uint64_t n = evaluations.fetch_add(1, std::memory_order_relaxed) + 1;
  if ((n > 1024 && (n & (n - 1)) != 0) || !installed.load(std::memory_order_acquire)) return;
#if defined(__GLIBC__)
  static std::mutex mu;
  std::lock_guard<std::mutex> g(mu);
  on_exit(fast_exit, nullptr);
#endif
}

}  // namespace emily

extern "C" {

EMILY_API int emily_fast_exit_install(void) {
#if defined(__GLIBC__)
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] {
    try {
      // The statics whose destructors must run after the handler, made now.
      { auto d = mx::allocator::malloc(64); }
      (void)mx::get_active_memory();
      (void)mx::scheduler::scheduler();
      rc = on_exit(fast_exit, nullptr) == 0 ? 1 : -1;
      installed.store(rc == 1, std::memory_order_release);
    } catch (...) {
      rc = -1;
    }
  });
  return rc;
#else
  return 0;
#endif
}

}  // extern "C"
