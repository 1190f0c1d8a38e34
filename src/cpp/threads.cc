// Where the threads Emily brings about may run.
//
// A new thread takes the CPU set of the thread that starts it. In a BEAM run with
// scheduler binding (`erl +sbt db`, and the other +sbt types), every normal scheduler
// thread is bound to one CPU, and each NIF call runs on one of them. Left alone:
// - OpenBLAS starts its pool when the NIF library is loaded (on a bound scheduler), counts
//   that thread's CPUs, sizes its pool to one thread and runs every matmul single-threaded
//   (measured here, `+sbt db` on 2 CPUs: f32 matmul 256 at 113 GFLOP/s instead of 207);
// - MLX starts a stream's thread on the first task handed to it, often from a bound
//   scheduler, and that thread then shares its one CPU with the scheduler for good.
// Emily's own threads (workers, the GC pressure thread), MLX's stream threads and OpenBLAS's
// pool therefore take the process's CPU set: the main thread's, which the BEAM never binds
// (it is what `taskset` or a cgroup cpuset left the process).
#include <sched.h>
#include <unistd.h>

#include "emily.h"
#include "threads.hpp"

namespace emily {

#ifdef __linux__
namespace {
bool process_set(cpu_set_t* out) { return sched_getaffinity(getpid(), sizeof(cpu_set_t), out) == 0; }
bool thread_set(cpu_set_t* out) { return sched_getaffinity(0, sizeof(cpu_set_t), out) == 0; }
}  // namespace

ProcessCpus::ProcessCpus() {
  static_assert(sizeof(saved_) >= sizeof(cpu_set_t));
  auto* mine = reinterpret_cast<cpu_set_t*>(saved_);
  cpu_set_t all;
  if (!thread_set(mine) || !process_set(&all) || CPU_EQUAL(mine, &all)) return;
  changed_ = sched_setaffinity(0, sizeof(cpu_set_t), &all) == 0;
}

ProcessCpus::~ProcessCpus() {
  if (changed_) sched_setaffinity(0, sizeof(cpu_set_t), reinterpret_cast<cpu_set_t*>(saved_));
}

int process_cpu_count() {
  cpu_set_t all;
  return process_set(&all) ? CPU_COUNT(&all) : 0;
}
#else
// No CPU sets to inherit (macOS has none): nothing to do.
ProcessCpus::ProcessCpus() {}
ProcessCpus::~ProcessCpus() {}
int process_cpu_count() { return 0; }
#endif

}  // namespace emily

extern "C" {

int emily_thread_use_process_cpus(void) {
#ifdef __linux__
  cpu_set_t all;
  if (!emily::process_set(&all)) return -1;
  return sched_setaffinity(0, sizeof(cpu_set_t), &all) == 0 ? 1 : -1;
#else
  return 0;
#endif
}

int emily_process_cpu_count(void) { return emily::process_cpu_count(); }

}  // extern "C"
