// Internal helpers shared by the op-family translation units.
#pragma once
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <atomic>
#include <thread>
#include <shared_mutex>
#include <string>
#include <string_view>
#if defined(__linux__)
#include <sys/sysinfo.h>
#endif

#include "emily.h"
#include "mlx/mlx.h"

namespace mx = mlx::core;

// Marks the C entry points of the op families.
#define EMILY_API __attribute__((visibility("default")))

struct emily_array {
  mx::array a;
};

namespace emily {

// Error kinds read by emily_last_error_kind(): bad arguments (std::logic_error and its
// subclasses: invalid_argument, out_of_range, ...; how MLX and the shim refuse shapes, dtypes
// and values when an op is built) or a failure while running (std::runtime_error and any
// other exception: LAPACK reporting a singular matrix at evaluation, an allocation refused).
enum ErrorKind : int { kArgument = 0, kRuntime = 1 };
void set_error(const char* msg, ErrorKind kind = kRuntime);
// The message and kind of a caught exception.
void set_error(const std::exception& e);

mx::Dtype to_dtype(int32_t code);

// A new MLX buffer of `nbytes` (bridge.cc). Throws, rather than returning a null buffer MLX
// would write through, when it does not fit under MLX's memory limit or malloc fails.
mx::allocator::Data checked_malloc(size_t nbytes, const char* what);
// Throws when evaluating `roots` would need one buffer larger than MLX's memory limit allows
// (bridge.cc): on the CPU, MLX writes through the null buffer a failed malloc returns.
void guard_memory(emily_arrays roots);
int32_t from_dtype(mx::Dtype d);
// Whether a primitive's cost does not follow from its sizes (bridge.cc): factorizations,
// sorts, convolutions, FFTs, compiled functions. Graphs and programs holding one are not
// evaluated in a caller's (BEAM scheduler) thread.
bool heavy_primitive(std::string_view name);
// Streams are tracked by index up to this bound (worker-stream bitmap, direct execution).
constexpr int kTrackedStreams = 1 << 16;
inline bool tracked_stream(int index) { return index >= 0 && index < kTrackedStreams; }
// Whether the calling thread stands for the worker owning stream `index` (core.cc).
bool owns_stream(int index);
// Direct execution (direct.cc): the calling thread runs the MLX kernels of the CPU streams
// it stands for itself, in place of MLX's stream thread. probe_direct checks once, on `s`,
// that libmlx's scheduler calls reach Emily; set_direct_here turns it on or off for the
// calling thread; forget_error drops a stream's kernel error not yet reported;
// mark_real_used (core.cc) notes that MLX's stream thread has work for a stream (direct.cc
// calls it for every call it passes on to MLX's scheduler).
bool probe_direct(const mx::Stream& s);
int direct_state();  // 1 works, 0 does not, -1 not probed yet
bool begin_direct();  // core.cc: for the owned streams; false: stay on MLX's threads
void set_direct_here(bool on);
void forget_error(int index);
void mark_real_used(int index);
// Whether `index` is a worker's CPU stream still in the pool of unused ones (core.cc).
bool pooled_stream(int index);
// Whether MLX's scheduler may not have started a thread for stream `index` yet, and the
// note that it has (core.cc; direct.cc starts them with the process's CPU set).
bool real_start_pending(int index);
void mark_real_started(int index);
// Throws when the calling thread stands for a worker (emily_own_streams) and `s` is not one
// of that worker's streams (core.cc): MLX's CPU streams may be used from any thread, so
// this is what keeps a worker's nodes from running on another worker's thread.
void check_owned(const mx::Stream& s);
// MLX 0.32 keeps its thread-unsafe CPU streams in a process-wide table that it updates
// without a lock: a stream created while another thread evaluates can make that
// evaluation miss its own stream ("There is no Stream(cpu, 0) in current thread"; seen
// with workers started during other processes' evaluations). Every entry point that
// evaluates holds this lock shared, stream creation holds it exclusively (core.cc, which
// makes CPU streams in batches so that starting a worker seldom waits).
std::shared_mutex& stream_table_lock();
// Stream creators waiting for the exclusive lock: new evaluations let them in first
// (glibc's read-write lock prefers readers, which would starve a creator under load).
std::atomic<int>& stream_creators_waiting();

class EvalGuard {
 public:
  explicit EvalGuard(std::shared_mutex& mu) : mu_(mu) {
    while (stream_creators_waiting().load(std::memory_order_acquire) > 0) std::this_thread::yield();
    mu_.lock_shared();
  }
  ~EvalGuard() { mu_.unlock_shared(); }
  EvalGuard(const EvalGuard&) = delete;
  EvalGuard& operator=(const EvalGuard&) = delete;

 private:
  std::shared_mutex& mu_;
};
// Evaluates `outs` and waits for them awake, yielding, for up to `yield_us` before
// sleeping (bridge.cc): on these machines a thread that sleeps until MLX's stream thread
// signals pays a cross-core wake-up, often longer than a small graph's work (measured: a
// 1k add round trip 13-50 us sleeping, bimodal; 16-17 us yielding). Only unscheduled
// arrays go to MLX: given none, MLX's eval uses the calling thread's default stream, which
// a BEAM scheduler thread does not own.
void eval_awake(const std::vector<mx::array>& outs, int yield_us = 50);

inline mx::Stream stream(emily_stream s) {
  return mx::Stream(s.index, s.device == 1 ? mx::Device::gpu : mx::Device::cpu);
}

// MLX takes 32-bit ints (shape dimensions, axes, counts): anything outside that range is
// refused here instead of being truncated into some other, valid-looking value.
inline int to_int(int64_t v, const char* what = "integer argument") {
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    throw std::invalid_argument(std::string(what) + " " + std::to_string(v) +
                                " is outside the 32-bit range MLX uses");
  return static_cast<int>(v);
}

inline mx::Shape shape(emily_ints v) {
  mx::Shape out;
  out.reserve(v.len);
  for (size_t i = 0; i < v.len; i++) out.push_back(to_int(v.ptr[i], "shape dimension"));
  return out;
}

inline std::vector<int> ints(emily_ints v) {
  std::vector<int> out;
  out.reserve(v.len);
  for (size_t i = 0; i < v.len; i++) out.push_back(to_int(v.ptr[i]));
  return out;
}

// Axes normalized to [0, ndim), refused when out of range or repeated (several MLX ops read
// or write out of bounds otherwise).
inline std::vector<int> axes_of(emily_ints v, size_t ndim, const char* op) {
  std::vector<int> out;
  int64_t n = static_cast<int64_t>(ndim);
  for (size_t i = 0; i < v.len; i++) {
    int64_t ax = v.ptr[i] < 0 ? v.ptr[i] + n : v.ptr[i];
    if (ax < 0 || ax >= n)
      throw std::invalid_argument(std::string(op) + " axis " + std::to_string(v.ptr[i]) +
                                  " is out of range for an array with " + std::to_string(ndim) +
                                  " dimensions");
    for (int seen : out)
      if (seen == ax) throw std::invalid_argument(std::string(op) + " repeated axis " + std::to_string(ax));
    out.push_back(static_cast<int>(ax));
  }
  return out;
}

// Most bytes one array may have: 2^48, far below where size_t and MLX's own element
// arithmetic wrap around, and on Linux no more than RAM + swap. MLX 0.32's allocator does
// not check malloc's result: an allocation the kernel refuses (one larger than RAM + swap)
// makes MLX write through a null pointer and kills the VM. Refusing such arrays when the op
// is built keeps that from ever reaching evaluation.
inline uint64_t max_array_bytes() {
  static const uint64_t limit = [] {
    uint64_t cap = uint64_t{1} << 48;
#if defined(__linux__)
    struct sysinfo si;
    if (sysinfo(&si) == 0) {
      uint64_t total = (static_cast<uint64_t>(si.totalram) + si.totalswap) * si.mem_unit;
      if (total > 0 && total < cap) cap = total;
    }
#endif
    return cap;
  }();
  return limit;
}

// Refuses an array whose element count or byte size overflows (MLX computes sizes in
// size_t without checks, so a huge broadcast or tile would otherwise wrap and under-allocate)
// or exceeds max_array_bytes().
inline void check_size(const mx::array& a) {
  uint64_t n = 1;
  bool overflow = false;
  for (auto d : a.shape()) {
    if (d < 0) throw std::invalid_argument("negative dimension " + std::to_string(d) + " in result shape");
    if (d == 0) return;
    overflow = overflow || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n);
  }
  uint64_t bytes = 0;
  if (overflow || __builtin_mul_overflow(n, static_cast<uint64_t>(a.itemsize()), &bytes) ||
      bytes > max_array_bytes()) {
    std::string shp;
    for (auto d : a.shape()) shp += "[" + std::to_string(d) + "]";
    throw std::invalid_argument("result " + shp + " would need more than the " +
                                std::to_string(max_array_bytes()) +
                                " bytes one array may have here (RAM + swap)");
  }
}

inline std::vector<mx::array> arrays(emily_arrays v) {
  std::vector<mx::array> out;
  out.reserve(v.len);
  for (size_t i = 0; i < v.len; i++) out.push_back(v.ptr[i]->a);
  return out;
}

// Matrix-level gathers (gather_mm, gather_qmm): index values into the `batch` matrices of an
// operand (index.cc). MLX's kernels read whatever matrix an index names, so every value is
// made safe as `take` does: negatives in [-batch, -1] count from the end, anything else out
// of range is clamped to the first or last matrix. Refuses non-integer indices, and indices
// into an empty batch unless there are none.
mx::array matrix_indices(const mx::array& idx, int64_t batch, const char* op, mx::Stream s);

// The number of matrices in `a`'s batch (every axis but the last two), saturating at
// INT64_MAX; 1 for an array of fewer than 3 dimensions.
inline int64_t batch_count(const mx::array& a) {
  int64_t n = 1;
  for (size_t d = 0; d + 2 < a.ndim(); d++) {
    if (a.shape(d) == 0) return 0;
    if (__builtin_mul_overflow(n, static_cast<int64_t>(a.shape(d)), &n)) n = INT64_MAX;
  }
  return n;
}

// An optional array passed as a list of 0 or 1 arrays.
inline std::optional<mx::array> optional_array(emily_arrays v, const char* op, const char* what) {
  if (v.len > 1)
    throw std::invalid_argument(std::string("[") + op + "] " + what + " must be a list of 0 or 1 arrays, got " +
                                std::to_string(v.len));
  if (v.len == 0) return std::nullopt;
  return v.ptr[0]->a;
}

inline int put(emily_array** out, mx::array&& a) {
  check_size(a);
  *out = new emily_array{std::move(a)};
  return 0;
}

// Most outputs one multi-output op may return: their handles alone (an MLX array
// description, Emily's and the BEAM's wrappers: about 1 KiB each) would otherwise outgrow
// RAM + swap. Checked before the op is built (split or unstack of a huge lazy broadcast or
// an empty axis would make that many arrays at once).
inline uint64_t max_outputs() { return max_array_bytes() / 1024; }

inline void check_outputs(uint64_t n, const char* op) {
  if (n > max_outputs())
    throw std::invalid_argument(std::string("[") + op + "] would return " + std::to_string(n) +
                                " arrays, more than the " + std::to_string(max_outputs()) +
                                " one op may return here");
}

// Multi-output ops, any number of outputs: every output size-checked before any is handed
// out, then each handed to `outs.push` in order (which owns it from then on).
inline int put_all(emily_outs outs, std::vector<mx::array>&& v) {
  for (const auto& a : v) check_size(a);
  for (auto& a : v) outs.push(outs.ctx, new emily_array{std::move(a)});
  return 0;
}

inline int put_pair(emily_outs outs, std::pair<mx::array, mx::array>&& p) {
  return put_all(outs, {std::move(p.first), std::move(p.second)});
}

}  // namespace emily

// Runs `body`, turning any C++ exception into a non-zero return and a message.
// (Variadic: a body may hold commas, e.g. structured bindings.)
#define EMILY_GUARD(...)                                  \
  try {                                                   \
    __VA_ARGS__;                                          \
    return 0;                                             \
  } catch (const std::exception& e) {                     \
    emily::set_error(e);                                  \
    return 1;                                             \
  } catch (...) {                                         \
    emily::set_error("unknown C++ exception");            \
    return 1;                                             \
  }
