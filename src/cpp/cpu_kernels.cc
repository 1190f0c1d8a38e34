// Emily's CPU kernels in MLX's graph: a custom primitive (FastUnary) whose eval_cpu runs the
// SLEEF kernels of src/cpp/kernels on a pool of threads. The unary ops of unary.cc build it
// for float32, float16 and bfloat16 arrays on CPU streams when the kernels are built in
// (build.rs: x86_64 with SLEEF) and the CPU has AVX2+FMA or AVX-512F; otherwise they build
// MLX's own primitive. float16 and bfloat16 are computed in float32.
#include "cpu_kernels.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/primitives.h"
#include "threads.hpp"

#if defined(EMILY_CPU_KERNELS)
#include "kernels/kernels.hpp"
#endif

namespace emily::kernels {

// A pool of process_cpu_count() - 1 threads that, with the calling thread, runs the chunks
// of one job at a time. A caller that finds the pool busy (another stream's kernel) runs
// its chunks itself, so two evaluating threads never wait on each other. Idle threads sleep
// on a condition variable: nothing spins beside OpenBLAS or the BEAM's schedulers. The pool
// is never destroyed (exit does not join it).
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();
    return *pool;
  }

  size_t threads() const { return workers_; }

  void run(size_t chunks, const std::function<void(size_t)>& fn) {
    std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
    if (workers_ == 0 || chunks < 2 || !submit.owns_lock()) {
      for (size_t i = 0; i < chunks; i++) fn(i);
      return;
    }
    {
      std::lock_guard<std::mutex> g(m_);
      job_ = &fn;
      chunks_ = chunks;
      next_.store(0, std::memory_order_relaxed);
      done_ = 0;
      gen_++;
    }
    cv_.notify_all();
    size_t mine = claim(fn);
    std::unique_lock<std::mutex> g(m_);
    done_ += mine;
    done_cv_.wait(g, [&] { return done_ == chunks_ && active_ == 0; });
    job_ = nullptr;
  }

 private:
  Pool() {
    int cpus = process_cpu_count();
    if (cpus <= 0) cpus = static_cast<int>(std::thread::hardware_concurrency());
    workers_ = cpus > 1 ? static_cast<size_t>(cpus - 1) : 0;
    // Threads started here take the process's CPU set, not the caller's one CPU.
    ProcessCpus all;
    for (size_t i = 0; i < workers_; i++) std::thread([this] { loop(); }).detach();
  }

  size_t claim(const std::function<void(size_t)>& fn) {
    size_t n = 0;
    for (size_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < chunks_; n++) fn(i);
    return n;
  }

  void loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> g(m_);
    for (;;) {
      cv_.wait(g, [&] { return gen_ != seen; });
      seen = gen_;
      if (job_ == nullptr) continue;
      const auto* fn = job_;
      active_++;
      g.unlock();
      size_t n = claim(*fn);
      g.lock();
      active_--;
      done_ += n;
      if (done_ == chunks_ && active_ == 0) done_cv_.notify_one();
    }
  }

  size_t workers_ = 0;
  std::mutex submit_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(size_t)>* job_ = nullptr;
  size_t chunks_ = 0, done_ = 0, active_ = 0;
  uint64_t gen_ = 0;
  std::atomic<size_t> next_{0};
};

namespace {

#if defined(EMILY_CPU_KERNELS)
using UnaryF32 = void (*)(UnaryOp, const float*, float*, size_t);

UnaryF32 pick_unary() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return avx512::unary_f32;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2::unary_f32;
#endif
  return nullptr;
}

UnaryF32 unary_kernel() {
  static UnaryF32 k = pick_unary();
  return k;
}

// Inputs below this many elements run on the evaluating thread alone.
constexpr size_t kParallelMin = size_t{1} << 17;
constexpr size_t kChunkMin = size_t{1} << 15;
// float16/bfloat16 are widened through a float32 buffer of this many elements.
constexpr size_t kWiden = 2048;

template <typename T>
void unary_widened(UnaryF32 k, UnaryOp op, const T* in, T* out, size_t n) {
  float a[kWiden], b[kWiden];
  for (size_t i = 0; i < n; i += kWiden) {
    size_t m = std::min(kWiden, n - i);
    for (size_t j = 0; j < m; j++) a[j] = static_cast<float>(in[i + j]);
    k(op, a, b, m);
    for (size_t j = 0; j < m; j++) out[i + j] = static_cast<T>(b[j]);
  }
}

void unary_range(UnaryF32 k, UnaryOp op, mx::Dtype dt, const void* in, void* out, size_t begin, size_t end) {
  switch (dt) {
    case mx::float32:
      return k(op, static_cast<const float*>(in) + begin, static_cast<float*>(out) + begin, end - begin);
    case mx::float16:
      return unary_widened(k, op, static_cast<const mx::float16_t*>(in) + begin,
                           static_cast<mx::float16_t*>(out) + begin, end - begin);
    case mx::bfloat16:
      return unary_widened(k, op, static_cast<const mx::bfloat16_t*>(in) + begin,
                           static_cast<mx::bfloat16_t*>(out) + begin, end - begin);
    default: return;
  }
}

// Copies a strided array of 2- or 4-byte elements into the row-contiguous `dst`, walking
// the index like an odometer over the innermost dimension.
template <typename T>
void densify_as(const mx::array& src, mx::array& dst) {
  const T* in = src.data<T>();
  T* out = dst.data<T>();
  const auto& shape = src.shape();
  const auto& strides = src.strides();
  size_t nd = shape.size();
  if (nd == 0) {
    out[0] = in[0];
    return;
  }
  int64_t inner = shape[nd - 1], step = strides[nd - 1];
  std::vector<int64_t> idx(nd, 0);
  int64_t offset = 0;
  for (size_t o = 0, n = dst.size(); o < n; o += inner) {
    for (int64_t j = 0; j < inner; j++) out[o + j] = in[offset + j * step];
    for (size_t d = nd - 1; d-- > 0;) {
      offset += strides[d];
      if (++idx[d] < shape[d]) break;
      offset -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

void densify(const mx::array& src, mx::array& dst) {
  if (src.itemsize() == 4) return densify_as<uint32_t>(src, dst);
  return densify_as<uint16_t>(src, dst);
}

// Primitive names: "Emily" and MLX's name for the same op.
const char* op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::exp: return "EmilyExp";
    case UnaryOp::expm1: return "EmilyExpm1";
    case UnaryOp::log: return "EmilyLog";
    case UnaryOp::log1p: return "EmilyLog1p";
    case UnaryOp::sin: return "EmilySin";
    case UnaryOp::cos: return "EmilyCos";
    case UnaryOp::tanh: return "EmilyTanh";
    case UnaryOp::sigmoid: return "EmilySigmoid";
    case UnaryOp::erf: return "EmilyErf";
    case UnaryOp::sqrt: return "EmilySqrt";
    case UnaryOp::rsqrt: return "EmilyRsqrt";
  }
  return "EmilyUnary";
}

class FastUnary : public mx::UnaryPrimitive {
 public:
  FastUnary(mx::Stream s, UnaryOp op) : mx::UnaryPrimitive(s), op_(op) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    auto& enc = mx::cpu::get_command_encoder(stream());
    const mx::array& given = inputs[0];
    if (given.flags().contiguous && given.is_donatable() && given.itemsize() == out.itemsize()) {
      out.copy_shared_buffer(given);
    }
    mx::array in = given;
    if (!in.flags().contiguous) {
      // Strided or broadcast input: a row-contiguous copy first (MLX's unary ops walk the
      // strides instead; these kernels need dense memory).
      mx::array dense(in.shape(), in.dtype(), nullptr, {});
      dense.set_data(mx::allocator::malloc(dense.nbytes()));
      enc.set_input_array(in);
      enc.set_output_array(dense);
      enc.dispatch([src = in, dst = dense]() mutable { densify(src, dst); });
      enc.add_temporary(dense);
      in = dense;
    }
    if (!out.data_shared_ptr()) {
      out.set_data(mx::allocator::malloc(in.data_size() * out.itemsize()), in.data_size(), in.strides(),
                   in.flags());
    }
    enc.set_input_array(in);
    enc.set_output_array(out);
    enc.dispatch([src = in.data<void>(), dst = out.data<void>(), n = in.data_size(), dt = in.dtype(),
                  op = op_, k = unary_kernel()]() {
      if (n < kParallelMin) return unary_range(k, op, dt, src, dst, 0, n);
      auto& pool = Pool::get();
      size_t chunks = std::min(n / kChunkMin, 4 * (pool.threads() + 1));
      size_t step = (n + chunks - 1) / chunks;
      step = (step + 63) & ~size_t{63};
      chunks = (n + step - 1) / step;
      pool.run(chunks, [&](size_t c) { unary_range(k, op, dt, src, dst, c * step, std::min(n, (c + 1) * step)); });
    });
  }

  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("[cpu_kernels] Emily's CPU kernels do not run on a GPU stream");
  }

  const char* name() const override { return op_name(op_); }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const FastUnary*>(&other);
    return o != nullptr && o->op_ == op_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }

 private:
  UnaryOp op_;
};
#endif

std::atomic<bool> enabled{true};

}  // namespace

bool available() {
#if defined(EMILY_CPU_KERNELS)
  return unary_kernel() != nullptr;
#else
  return false;
#endif
}

const char* isa() {
#if defined(EMILY_CPU_KERNELS)
  auto k = unary_kernel();
  if (k == avx512::unary_f32) return "avx512";
  if (k == avx2::unary_f32) return "avx2";
#endif
  return nullptr;
}

bool is_kernel(const mx::Primitive& p) {
#if defined(EMILY_CPU_KERNELS)
  return dynamic_cast<const FastUnary*>(&p) != nullptr;
#else
  (void)p;
  return false;
#endif
}

std::optional<mx::array> unary(UnaryOp op, const mx::array& a, mx::Stream s) {
#if defined(EMILY_CPU_KERNELS)
  if (s.device != mx::Device::cpu || unary_kernel() == nullptr || !enabled.load(std::memory_order_relaxed))
    return std::nullopt;
  auto dt = a.dtype();
  if (dt != mx::float32 && dt != mx::float16 && dt != mx::bfloat16) return std::nullopt;
  return mx::array(a.shape(), dt, std::make_shared<FastUnary>(s, op), {a});
#else
  (void)op;
  (void)a;
  (void)s;
  return std::nullopt;
#endif
}

}  // namespace emily::kernels

extern "C" {

EMILY_API int emily_cpu_kernels(int on) {
  if (!emily::kernels::available()) return -1;
  return emily::kernels::enabled.exchange(on != 0) ? 1 : 0;
}

EMILY_API const char* emily_cpu_kernels_isa(void) { return emily::kernels::isa(); }

}  // extern "C"
