// Direct execution of CPU kernels in the evaluating thread.
//
// MLX's CPU backend does not run a kernel where the graph is evaluated: every primitive's
// eval_cpu hands closures to Scheduler::enqueue, which queues them for the stream's own
// thread, and the evaluating thread then waits for that thread to signal an event. For a
// small graph the work is a microsecond; the two thread wake-ups around it are not (on the
// 2-vCPU machines here a 1k-element add round trip took 12-46 us that way and 1.4 us with
// the closures run in place).
//
// libmlx calls Scheduler::enqueue, ::signal_event, ::wait_event and ::check_error through
// its PLT, so a definition earlier in the library search order is the one it gets.
// src/direct.rs exports four functions under MLX's mangled names from Emily's library (which
// is loaded before libmlx); they call the functions below. A closure for a CPU stream of the worker the
// calling thread stands for, with direct execution on for that thread, runs at once, in
// the order libmlx produces them (its eval walks the graph in dependency order, so every
// input is ready). Anything else goes on to MLX's own function (dlsym RTLD_NEXT): GPU
// streams, MLX's default streams, threads that do not stand for a worker.
//
// MLX starts a stream's thread the first time it is handed work, in the thread handing it
// over: that first call runs with the process's CPU set (threads.cc). Streams MLX has never
// been handed work for get no thread: check_error has nothing to read for them, and MLX's
// sweeps over all CPU streams (set_cache_limit, set_memory_limit) reach pooled streams that
// no worker uses yet, whose closures run in place.
//
// Errors keep MLX's semantics: a closure that throws does not stop the ones after it (as
// on MLX's stream thread), and the wait that follows throws its message. The message is
// kept for the stream until the evaluation signals its event; that signal and a closure
// rethrowing the message then go to MLX's own stream thread, which stores the error in its
// stream and poisons the event with it (MLX's Event keeps its error slot private). The
// stream is then marked as used by MLX's thread, so that the next direct use waits for it
// (streams.cc: begin_direct). Exceptions never leave a direct closure: nothing unwinds
// through libmlx's eval from here.
//
// The interposition is checked once (probe_direct): if libmlx's own calls do not reach
// this file (another loader, static linking, macOS's two-level namespace), direct
// execution stays off and MLX's stream threads run everything, as before.
#include <dlfcn.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "emily.h"
#include "mlx/event.h"
#include "mlx/scheduler.h"
#include "shim.hpp"
#include "threads.hpp"

namespace emily {
namespace {

using EnqueueFn = void (*)(void*, mx::Stream, std::function<void()>);
using EventFn = void (*)(void*, mx::Stream, mx::Event, std::function<void(mx::Event&)>);

// MLX's own definition: the next one after Emily's in the search order (never
// RTLD_DEFAULT, which may find Emily's own export first).
template <class F>
F mlx_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

EnqueueFn real_enqueue() {
  static EnqueueFn f = mlx_symbol<EnqueueFn>("_ZN3mlx4core9scheduler9Scheduler7enqueueENS0_6StreamESt8functionIFvvEE");
  return f;
}
EventFn real_signal_event() {
  static EventFn f =
      mlx_symbol<EventFn>("_ZN3mlx4core9scheduler9Scheduler12signal_eventENS0_6StreamENS0_5EventESt8functionIFvRS4_EE");
  return f;
}
EventFn real_wait_event() {
  static EventFn f =
      mlx_symbol<EventFn>("_ZN3mlx4core9scheduler9Scheduler10wait_eventENS0_6StreamENS0_5EventESt8functionIFvRS4_EE");
  return f;
}

using CheckErrorFn = void (*)(void*, mx::Stream);
CheckErrorFn real_check_error() {
  static CheckErrorFn f = mlx_symbol<CheckErrorFn>("_ZN3mlx4core9scheduler9Scheduler11check_errorENS0_6StreamE");
  return f;
}

// Whether libmlx's calls have reached this file (set by every call; read by the probe).
std::atomic<bool> reached{false};
// 1: direct execution works in this process, 0: it does not, -1: not probed yet.
std::atomic<int> available{-1};
std::mutex probe_mu;

// This thread runs the closures of the streams it stands for (see emily_own_streams).
thread_local bool direct_here = false;

// A direct closure's error, by stream, until its evaluation's event is signalled.
std::mutex errors_mu;
std::unordered_map<int, std::string> pending_errors;

void keep_error(int index, const char* what) {
  std::lock_guard<std::mutex> g(errors_mu);
  pending_errors.try_emplace(index, what);
}

std::optional<std::string> take_error(int index) {
  std::lock_guard<std::mutex> g(errors_mu);
  auto it = pending_errors.find(index);
  if (it == pending_errors.end()) return std::nullopt;
  std::string msg = std::move(it->second);
  pending_errors.erase(it);
  return msg;
}

mx::Stream unpack(uint64_t w0, uint64_t w1) {
  static_assert(sizeof(mx::Stream) <= 2 * sizeof(uint64_t));
  static_assert(std::is_trivially_copyable_v<mx::Stream>);
  uint64_t w[2] = {w0, w1};
  mx::Stream s(0, mx::Device::cpu);
  std::memcpy(static_cast<void*>(&s), w, sizeof(mx::Stream));
  return s;
}

bool runs_here(const mx::Stream& s) {
  return direct_here && s.device == mx::Device::cpu && tracked_stream(s.index) && owns_stream(s.index);
}

// An event entry point's arguments, unpacked (and the call noted for the probe).
struct EventCall {
  mx::Stream s;
  mx::Event& e;
  std::function<void(mx::Event&)>& f;
};

EventCall event_call(uint64_t s0, uint64_t s1, void* event, void* task) {
  reached.store(true, std::memory_order_relaxed);
  return {unpack(s0, s1), *static_cast<mx::Event*>(event), *static_cast<std::function<void(mx::Event&)>*>(task)};
}

template <class F>
void run_now(const mx::Stream& s, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    keep_error(s.index, e.what());
  } catch (...) {
    keep_error(s.index, "unknown C++ exception in an MLX kernel");
  }
}

// Passes a call on to MLX's scheduler, noting that its stream thread has work for the stream
// (a later switch to direct execution waits for it). The first call for a stream starts its
// thread there, so that call runs with the process's CPU set (threads.cc); the caller may
// be a BEAM scheduler bound to one CPU.
template <class F>
void to_mlx(const mx::Stream& s, F&& call) {
  mark_real_used(s.index);
  if (!real_start_pending(s.index)) return call();
  ProcessCpus cpus;
  call();
  mark_real_started(s.index);
}

}  // namespace

int direct_state() { return available.load(std::memory_order_acquire); }

// Finds out, once, whether libmlx's scheduler calls reach this file: with the calling
// thread set to run `s`'s closures, MLX's synchronize(s) (which enqueues a closure through
// libmlx's PLT and waits for it) must come through here. If it does not, MLX's stream
// thread runs the closure and the wait returns as usual: nothing hangs either way.
bool probe_direct(const mx::Stream& s) {
  int a = available.load(std::memory_order_acquire);
  if (a >= 0) return a == 1;
  std::lock_guard<std::mutex> g(probe_mu);
  a = available.load(std::memory_order_acquire);
  if (a >= 0) return a == 1;
  bool ok = false;
  if (real_enqueue() != nullptr && real_signal_event() != nullptr && real_wait_event() != nullptr) {
    bool was = direct_here;
    direct_here = true;
    reached.store(false);
    try {
      mx::synchronize(s);
      ok = reached.load();
    } catch (...) {
      ok = false;
    }
    direct_here = was;
  }
  available.store(ok ? 1 : 0, std::memory_order_release);
  return ok;
}

void set_direct_here(bool on) { direct_here = on; }

void forget_error(int index) { take_error(index); }

}  // namespace emily

using namespace emily;

extern "C" {

void emily_sched_enqueue(void* self, uint64_t s0, uint64_t s1, void* task) {
  reached.store(true, std::memory_order_relaxed);
  auto s = unpack(s0, s1);
  auto& f = *static_cast<std::function<void()>*>(task);
  // Nothing was ever queued on a pooled stream and no graph uses it: what MLX sends it
  // (a sweep's synchronize) runs here rather than in a thread started for it.
  if (runs_here(s) || pooled_stream(s.index)) {
    run_now(s, [&] { f(); });
    return;
  }
  if (auto real = real_enqueue()) return to_mlx(s, [&] { real(self, s, std::move(f)); });
  // MLX's own function cannot be found (no such loader seen): run the closure here, in
  // the order it came, rather than drop it.
  run_now(s, [&] { f(); });
}

void emily_sched_signal_event(void* self, uint64_t s0, uint64_t s1, void* event, void* task) {
  auto [s, e, f] = event_call(s0, s1, event, task);
  if (runs_here(s)) {
    if (auto msg = take_error(s.index)) {
      // MLX's stream thread stores the rethrown message in its stream, then poisons and
      // signals the event: the waiter gets the error as MLX gives it.
      to_mlx(s, [&] { real_enqueue()(self, s, [m = std::move(*msg)]() { throw std::runtime_error(m); }); });
      real_signal_event()(self, s, e, std::move(f));
      return;
    }
    run_now(s, [&] { f(e); });
    return;
  }
  if (auto real = real_signal_event()) return to_mlx(s, [&] { real(self, s, e, std::move(f)); });
  run_now(s, [&] { f(e); });
}

// MLX's check_error looks up (and so starts) the stream's thread to read the error stored
// there. A tracked stream that MLX's scheduler was never handed work for has no thread and
// no error: nothing to check.
void emily_sched_check_error(void* self, uint64_t s0, uint64_t s1) {
  auto s = unpack(s0, s1);
  if (tracked_stream(s.index) && real_start_pending(s.index)) return;
  if (auto real = real_check_error()) to_mlx(s, [&] { real(self, s); });
}

void emily_sched_wait_event(void* self, uint64_t s0, uint64_t s1, void* event, void* task) {
  auto [s, e, f] = event_call(s0, s1, event, task);
  if (runs_here(s)) {
    run_now(s, [&] { f(e); });
    return;
  }
  if (auto real = real_wait_event()) return to_mlx(s, [&] { real(self, s, e, std::move(f)); });
  run_now(s, [&] { f(e); });
}

}  // extern "C"
