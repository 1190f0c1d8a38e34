#include <algorithm>
#include <atomic>
#include <vector>
#include <mutex>
#include <climits>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "shim.hpp"
#include "threads.hpp"

namespace {
thread_local std::string last_error;
thread_local int last_error_kind = emily::kRuntime;
}

namespace emily {

void set_error(const char* msg, ErrorKind kind) {
  last_error = msg ? msg : "";
  last_error_kind = kind;
}

void set_error(const std::exception& e) {
  set_error(e.what(), dynamic_cast<const std::logic_error*>(&e) ? kArgument : kRuntime);
}

// Keep in sync with Emily's dtype codes (src/dtype.rs).
mx::Dtype to_dtype(int32_t code) {
  switch (code) {
    case 0: return mx::bool_;
    case 1: return mx::uint8;
    case 2: return mx::uint16;
    case 3: return mx::uint32;
    case 4: return mx::uint64;
    case 5: return mx::int8;
    case 6: return mx::int16;
    case 7: return mx::int32;
    case 8: return mx::int64;
    case 9: return mx::float16;
    case 10: return mx::bfloat16;
    case 11: return mx::float32;
    case 12: return mx::float64;
    case 13: return mx::complex64;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(code));
}

int32_t from_dtype(mx::Dtype d) {
  switch (d.val()) {
    case mx::Dtype::Val::bool_: return 0;
    case mx::Dtype::Val::uint8: return 1;
    case mx::Dtype::Val::uint16: return 2;
    case mx::Dtype::Val::uint32: return 3;
    case mx::Dtype::Val::uint64: return 4;
    case mx::Dtype::Val::int8: return 5;
    case mx::Dtype::Val::int16: return 6;
    case mx::Dtype::Val::int32: return 7;
    case mx::Dtype::Val::int64: return 8;
    case mx::Dtype::Val::float16: return 9;
    case mx::Dtype::Val::bfloat16: return 10;
    case mx::Dtype::Val::float32: return 11;
    case mx::Dtype::Val::float64: return 12;
    case mx::Dtype::Val::complex64: return 13;
  }
  return -1;
}

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

const char* emily_last_error(void) { return last_error.c_str(); }
int emily_last_error_kind(void) { return last_error_kind; }

void emily_array_free(emily_array* a) { delete a; }

int emily_array_clone(const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::array(a->a)))
}

int emily_ndim(const emily_array* a) { return static_cast<int>(a->a.ndim()); }

void emily_shape(const emily_array* a, int64_t* out) {
  const auto& s = a->a.shape();
  for (size_t i = 0; i < s.size(); i++) out[i] = s[i];
}

int emily_dtype(const emily_array* a) { return from_dtype(a->a.dtype()); }
size_t emily_nbytes(const emily_array* a) { return a->a.nbytes(); }
size_t emily_size(const emily_array* a) { return a->a.size(); }
int emily_is_available(const emily_array* a) { return a->a.is_available() ? 1 : 0; }

int emily_is_row_contiguous(const emily_array* a) {
  return a->a.flags().row_contiguous ? 1 : 0;
}

const void* emily_data_ptr(const emily_array* a) {
  if (!a->a.is_available() || a->a.data_shared_ptr() == nullptr) return nullptr;
  return a->a.data<void>();
}

uintptr_t emily_buffer_id(const emily_array* a) {
  const auto& d = a->a.data_shared_ptr();
  return d ? reinterpret_cast<uintptr_t>(d.get()) : 0;
}

int emily_is_donatable(const emily_array* a) { return a->a.is_donatable() ? 1 : 0; }

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

const char* emily_mlx_version(void) {
  static std::string v = mx::version();
  return v.c_str();
}

int emily_array_contiguous(emily_stream s, const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::contiguous(a->a, false, stream(s))))
}

int emily_eval(emily_arrays v) { EMILY_GUARD({
  EvalGuard g(stream_table_lock());
  guard_memory(v);
  mx::eval(arrays(v));
}) }
int emily_async_eval(emily_arrays v) { EMILY_GUARD({
  EvalGuard g(stream_table_lock());
  guard_memory(v);
  mx::async_eval(arrays(v));
}) }

int emily_from_bytes(const void* data, size_t nbytes, emily_ints shp, int32_t dtype,
                     emily_array** out) {
  EMILY_GUARD({
    auto dt = to_dtype(dtype);
    auto s = shape(shp);
    size_t n = 1;
    for (auto d : s) {
      if (d < 0) throw std::invalid_argument("negative dimension in shape");
      n *= static_cast<size_t>(d);
    }
    if (n * dt.size() != nbytes)
      throw std::invalid_argument("binary has " + std::to_string(nbytes) + " bytes but shape and dtype need " +
                                  std::to_string(n * dt.size()));
    auto buf = checked_malloc(nbytes, "from_binary");
    if (nbytes) std::memcpy(buf.buffer().raw_ptr(), data, nbytes);
    put(out, mx::array(std::move(buf), std::move(s), dt));
  })
}

size_t emily_active_memory(void) { return mx::get_active_memory(); }
size_t emily_peak_memory(void) { return mx::get_peak_memory(); }
size_t emily_cache_memory(void) { return mx::get_cache_memory(); }
void emily_reset_peak_memory(void) { mx::reset_peak_memory(); }
void emily_clear_cache(void) { mx::clear_cache(); }
size_t emily_set_memory_limit(size_t limit) { return mx::set_memory_limit(limit); }
size_t emily_set_cache_limit(size_t limit) { return mx::set_cache_limit(limit); }
size_t emily_get_memory_limit(void) { return mx::get_memory_limit(); }

// glibc's malloc serves a request of at least M_MMAP_THRESHOLD bytes with its own mmap and
// gives it back with munmap on free. Left alone it raises that threshold (up to 32 MiB, with
// the trim threshold at twice it) as such blocks are freed, so that a block allocated and
// freed over and over is reused from the heap. The BEAM sets the trim threshold and top pad
// at start (its +MYtt / +MYtp), and any mallopt call fixes the thresholds for good: in a BEAM
// every block of 128 KiB or more is a fresh mapping. OpenBLAS allocates ~0.5 MiB of
// per-call state in each threaded level-3 call, so every multithreaded sgemm then paid an
// mmap, page faults and an munmap (with a TLB shootdown on the CPU running OpenBLAS's other
// thread): 25-30 us per call, a sixth of a 256x256 matmul. Sets the trim threshold at twice
// the mmap threshold (glibc's own rule) and the top pad back to glibc's default. Returns 1
// when glibc took all three.
#if defined(__GLIBC__)
// glibc's default top pad (mallopt(3)); the BEAM sets 0. With no pad, a thread arena whose
// newest heap holds only one freed block unmaps that heap at once (heap_trim), and the next
// allocation maps a new one: OpenBLAS's per-call block can fall into that cycle for good.
constexpr int kGlibcTopPad = 128 * 1024;
#endif

int emily_malloc_tune(size_t mmap_threshold) {
#if defined(__GLIBC__)
  if (mmap_threshold == 0 || mmap_threshold > (size_t)INT_MAX / 2) return 0;
  int m = static_cast<int>(mmap_threshold);
  return mallopt(M_MMAP_THRESHOLD, m) == 1 && mallopt(M_TRIM_THRESHOLD, 2 * m) == 1 &&
                 mallopt(M_TOP_PAD, kGlibcTopPad) == 1
             ? 1
             : 0;
#else
  (void)mmap_threshold;
  return 0;
#endif
}

void emily_malloc_trim(void) {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // extern "C"
