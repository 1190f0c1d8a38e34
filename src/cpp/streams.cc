// Streams: the ones Emily's workers own (which thread may evaluate which stream), the lock
// that orders evaluations with stream creation, the pool of CPU streams, devices.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "shim.hpp"
#include "threads.hpp"

namespace emily {

// The streams of the worker the calling thread stands for (none: not a worker thread).
thread_local int32_t owned[2];
thread_local size_t owned_count = 0;

// A set of stream indices below kTrackedStreams, safe to use from any thread; indices out
// of range are never members.
class StreamSet {
 public:
  void add(int index) {
    if (tracked_stream(index)) words_[index / 64].fetch_or(bit(index), std::memory_order_acq_rel);
  }
  void remove(int index) {
    if (tracked_stream(index)) words_[index / 64].fetch_and(~bit(index), std::memory_order_acq_rel);
  }
  bool contains(int index) const {
    return tracked_stream(index) && (words_[index / 64].load(std::memory_order_acquire) & bit(index));
  }

 private:
  static uint64_t bit(int index) { return uint64_t{1} << (index % 64); }
  std::atomic<uint64_t> words_[kTrackedStreams / 64] = {};
};

// The streams made for Emily's workers (emily_stream_new). MLX's own default streams are
// not among them: MLX evaluates nodes on those from any thread.
StreamSet worker_streams;

void mark_worker_stream(int index) { worker_streams.add(index); }

bool is_worker_stream(int index) { return worker_streams.contains(index); }

// CPU streams made for workers and not yet handed to one (take_cpu_stream).
StreamSet pooled;

bool pooled_stream(int index) { return pooled.contains(index); }

// Streams that MLX's scheduler has been handed work for (direct.cc): MLX starts a
// stream's thread then. Untracked indices are always pending.
StreamSet real_started;

bool real_start_pending(int index) { return !real_started.contains(index); }

void mark_real_started(int index) { real_started.add(index); }

std::shared_mutex& stream_table_lock() {
  static std::shared_mutex mu;
  return mu;
}

std::atomic<int>& stream_creators_waiting() {
  static std::atomic<int> n{0};
  return n;
}

// The exclusive side of stream_table_lock, announced so that new evaluations wait.
struct CreatorGuard {
  CreatorGuard() {
    stream_creators_waiting().fetch_add(1, std::memory_order_acq_rel);
    stream_table_lock().lock();
  }
  ~CreatorGuard() {
    stream_table_lock().unlock();
    stream_creators_waiting().fetch_sub(1, std::memory_order_acq_rel);
  }
};

bool owns_stream(int index) {
  for (size_t i = 0; i < owned_count; i++)
    if (owned[i] == index) return true;
  return false;
}

// Streams that MLX's own stream thread may still have work queued for: every stream MLX's
// scheduler was handed work for (direct.cc marks it as it hands the work over) since the
// stream last passed to direct execution, which waits for that thread first. Streams MLX
// was never handed work for are never waited for (and MLX never starts a thread for them).
StreamSet real_used;

bool begin_direct() {
  for (size_t i = 0; i < owned_count; i++)
    if (!tracked_stream(owned[i])) return false;
  if (!probe_direct(mx::Stream(owned[0], mx::Device::cpu))) return false;
  for (size_t i = 0; i < owned_count; i++) {
    int idx = owned[i];
    if (real_used.contains(idx)) {
      // MLX's synchronize also throws (and clears) an error its thread stored for the
      // stream that no wait has reported: it belongs to an earlier job.
      set_direct_here(false);
      EvalGuard table(stream_table_lock());
      try {
        mx::synchronize(mx::Stream(idx, mx::Device::cpu));
      } catch (const std::exception&) {
      }
      real_used.remove(idx);
    }
    forget_error(idx);
  }
  return true;
}

void mark_real_used(int idx) {
  if (!real_used.contains(idx)) real_used.add(idx);
}

void check_owned(const mx::Stream& s) {
  if (owned_count == 0 || !is_worker_stream(s.index) || owns_stream(s.index)) return;
  throw std::runtime_error(std::string("There is no Stream(") + (s.device == mx::Device::gpu ? "gpu" : "cpu") +
                           ", " + std::to_string(s.index) +
                           ") in current thread: it belongs to another worker");
}

}  // namespace emily

using namespace emily;

extern "C" {

int emily_device_available(int32_t device) {
  try {
    return mx::is_available(device == 1 ? mx::Device::gpu : mx::Device::cpu) ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int emily_gpu_start(void) {
  // The driver starts threads of its own when its context is made (on an H100: a
  // "cuda0000..." thread); made from a bound scheduler, they would share its one CPU. MLX
  // makes the context on its first allocation, whichever thread that is: here, once, with
  // the process's CPU set (threads.cc).
  emily::ProcessCpus cpus;
  try {
    if (!mx::is_available(mx::Device::gpu)) return 0;
    auto probe = mx::allocator::malloc(16);  // freed as it goes out of scope
    return 1;
  } catch (...) {
    return 0;
  }
}

// MLX's description of a device as "key\tvalue\n" lines; a value that is a number is
// written as "#<digits>". Written into a thread-local string; NULL (and the error set) when
// MLX cannot describe it (no such device in this build).
const char* emily_device_info(int32_t device) {
  thread_local std::string text;
  try {
    const auto& info = mx::device_info(mx::Device(device == 1 ? mx::Device::gpu : mx::Device::cpu));
    text.clear();
    for (const auto& [k, v] : info) {
      text += k;
      text += '\t';
      if (const auto* n = std::get_if<size_t>(&v)) {
        text += '#';
        text += std::to_string(*n);
      } else {
        text += std::get<std::string>(v);
      }
      text += '\n';
    }
    return text.c_str();
  } catch (const std::exception& e) {
    set_error(e);
    return nullptr;
  } catch (...) {
    set_error("unknown C++ exception");
    return nullptr;
  }
}

void emily_own_streams(const int32_t* streams, size_t n, int direct) {
  emily::owned_count = std::min<size_t>(n, 2);
  for (size_t i = 0; i < emily::owned_count; i++) emily::owned[i] = streams[i];
  bool on = false;
  if (direct && emily::owned_count > 0) {
    try {
      on = emily::begin_direct();
    } catch (...) {
      on = false;
    }
  }
  emily::set_direct_here(on);
}

int emily_direct_available(void) {
  return emily::direct_state();
}

namespace {
// CPU streams are made in batches, each under the exclusive table lock, and handed out
// from this pool: starting a worker then rarely waits for running evaluations to finish
// (and never while the pool has streams). MLX starts a stream's thread on first use, so
// pooled streams cost no threads: MLX's sweeps over every CPU stream (its set_cache_limit
// and set_memory_limit synchronize them all) run their closures for pooled streams in the
// calling thread (direct.cc).
constexpr int kStreamBatch = 32;
std::mutex pool_mu;
std::vector<mx::Stream> cpu_pool;

mx::Stream take_cpu_stream() {
  std::lock_guard<std::mutex> g(pool_mu);
  if (cpu_pool.empty()) {
    CreatorGuard table;
    for (int i = 0; i < kStreamBatch; i++) {
      auto s = mx::new_thread_unsafe_stream(mx::Device::cpu);
      mark_worker_stream(s.index);
      pooled.add(s.index);
      cpu_pool.push_back(s);
    }
    std::reverse(cpu_pool.begin(), cpu_pool.end());
  }
  auto s = cpu_pool.back();
  cpu_pool.pop_back();
  pooled.remove(s.index);
  return s;
}

mx::Stream new_gpu_stream() {
  CreatorGuard table;
  auto s = mx::new_stream(mx::Device::gpu);
  mark_worker_stream(s.index);
  return s;
}
}  // namespace

int emily_stream_new(int32_t device, emily_stream* out) {
  EMILY_GUARD({
    // A CPU stream may be used from any thread (Emily serialises its users: the worker
    // thread, or a caller evaluating a cheap graph inline under the worker's lock); a GPU
    // stream stays with the thread that made it.
    auto s = device == 1 ? new_gpu_stream() : take_cpu_stream();
    mx::set_default_stream(s);
    out->index = s.index;
    out->device = device;
  })
}

int emily_synchronize(emily_stream s) {
  EMILY_GUARD({
    EvalGuard g(stream_table_lock());
    mx::synchronize(stream(s));
  })
}

}  // extern "C"
