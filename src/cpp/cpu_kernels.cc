// Emily's CPU kernels in MLX's graph: custom primitives whose eval_cpu runs the SLEEF
// kernels of src/cpp/kernels on a pool of threads. FastUnary (exp, erf, ... of unary.cc),
// FastBinary (power, binary.cc) and FastReduce (sum, max, min and mean over trailing axes,
// reduce.cc) are built for float32, float16 and bfloat16 arrays on CPU streams when the
// kernels are built in (build.rs: x86_64 with SLEEF) and the CPU has AVX2+FMA or AVX-512F;
// otherwise the ops build MLX's own primitives. float16 and bfloat16 are computed in float32
// (reductions accumulate in float32 and round once).
#include "cpu_kernels.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#endif

#include "mlx/backend/cpu/encoder.h"
#include "mlx/primitives.h"
#include "cblas.hpp"
#include "threads.hpp"

#if defined(EMILY_CPU_KERNELS)
#include "kernels/kernels.hpp"
#endif

namespace emily::kernels {

// A pool of process_cpu_count() - 1 threads that, with the calling thread, runs the chunks
// of one job at a time. A caller that finds the pool busy (another stream's kernel) runs
// its chunks itself, so two evaluating threads never wait on each other. A thread that has
// nothing to do spins for kSpin (a job that follows within it starts at once, as kernels of
// one evaluation do: a decoding step calls hundreds of them of tens of microseconds each;
// a job run with `linger` false, one that OpenBLAS's threads follow, skips the spin), then
// sleeps on a condition variable, so an idle pool takes no CPU from OpenBLAS or the
// BEAM's schedulers. The pool is never destroyed (exit does not join it).
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();
    return *pool;
  }

  size_t threads() const { return workers_; }

  void run(size_t chunks, const std::function<void(size_t)>& fn, bool linger = true) {
    std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
    if (workers_ == 0 || chunks < 2 || !submit.owns_lock()) {
      for (size_t i = 0; i < chunks; i++) fn(i);
      return;
    }
    {
      std::lock_guard<std::mutex> g(m_);
      job_ = &fn;
      chunks_ = chunks;
      linger_ = linger;
      next_.store(0, std::memory_order_relaxed);
      done_ = 0;
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    size_t mine = claim(fn);
    std::unique_lock<std::mutex> g(m_);
    done_ += mine;
    auto finished = [&] { return done_ == chunks_ && active_ == 0; };
    if (!finished()) {
      g.unlock();
      spin([&] { return done_.load() == chunks && active_.load() == 0; });
      g.lock();
    }
    done_cv_.wait(g, finished);
    job_ = nullptr;
  }

 private:
  static constexpr auto kSpin = std::chrono::microseconds(100);

  // Spins until ready() or kSpin has passed, yielding the CPU every 64 pauses.
  template <typename F>
  static void spin(F ready) {
    auto until = std::chrono::steady_clock::now() + kSpin;
    for (unsigned i = 1; !ready(); i++) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      asm volatile("yield");
#endif
      if (i % 64 == 0) {
        if (std::chrono::steady_clock::now() > until) return;
        // A thread that is ready to run on this CPU (a pool thread preempted in its
        // chunk, when the process has more runnable threads than CPUs) runs first.
        std::this_thread::yield();
      }
    }
  }

  Pool() {
    int cpus = process_cpu_count();
    if (cpus <= 0) cpus = static_cast<int>(std::thread::hardware_concurrency());
    workers_ = cpus > 1 ? static_cast<size_t>(cpus - 1) : 0;
    // Threads started here take the process's CPU set, not the caller's one CPU.
    ProcessCpus all;
    for (size_t i = 0; i < workers_; i++)
      std::thread([this] {
#if defined(__linux__)
        // (a thread takes its creator's name: a worker's, which tests look for)
        pthread_setname_np(pthread_self(), "emily-kernels");
#endif
        loop();
      }).detach();
  }

  size_t claim(const std::function<void(size_t)>& fn) {
    size_t n = 0;
    for (size_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < chunks_; n++) fn(i);
    return n;
  }

  // done_, active_ and gen_ change under m_ (the condition variables' predicates read them
  // there); the spins read them without it.
  void loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> g(m_);
    for (;;) {
      if (gen_.load() == seen && linger_) {
        g.unlock();
        spin([&] { return gen_.load(std::memory_order_acquire) != seen; });
        g.lock();
      }
      cv_.wait(g, [&] { return gen_.load() != seen; });
      seen = gen_.load();
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
  size_t chunks_ = 0;
  bool linger_ = true;
  std::atomic<size_t> done_{0}, active_{0};
  std::atomic<uint64_t> gen_{0};
  std::atomic<size_t> next_{0};
};

namespace {

#if defined(EMILY_CPU_KERNELS)
const Isa* pick_isa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return &avx512::isa;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &avx2::isa;
#endif
  return nullptr;
}

const Isa* kernel_isa() {
  static const Isa* k = pick_isa();
  return k;
}

// Inputs below this many elements run on the evaluating thread alone.
constexpr size_t kParallelMin = size_t{1} << 17;
constexpr size_t kChunkMin = size_t{1} << 15;
// float16/bfloat16 are widened through float32 buffers of this many elements.
constexpr size_t kWiden = 2048;

// fn(begin, end) over [0, n) in pieces of at least `grain` (rounded to 64), on the pool when
// n elements of work (`work`) are enough to be worth it (`linger`: see Pool).
template <typename F>
void parallel_ranges(size_t n, size_t work, size_t grain, F fn, bool linger = true) {
  if (work < kParallelMin || n < 2) return fn(0, n);
  auto& pool = Pool::get();
  size_t chunks = std::min(std::max<size_t>(1, n / grain), 4 * (pool.threads() + 1));
  size_t step = (n + chunks - 1) / chunks;
  step = (step + 63) & ~size_t{63};
  chunks = (n + step - 1) / step;
  pool.run(chunks, [&](size_t c) { fn(c * step, std::min(n, (c + 1) * step)); }, linger);
}

// fn(float* a, float* b, ..., m) over float32 views of `n` elements of arrays of dtype `dt`
// at `ptrs`: the arrays themselves for float32, kWiden-element float32 copies for
// float16/bfloat16 (`writes` names the one to convert back).
template <typename T, size_t K, typename F>
void widened(const std::array<const void*, K>& in, void* out, size_t n, F fn) {
  float buf[K + 1][kWiden];
  for (size_t i = 0; i < n; i += kWiden) {
    size_t m = std::min(kWiden, n - i);
    for (size_t k = 0; k < K; k++) {
      const T* src = static_cast<const T*>(in[k]);
      if (src == nullptr) continue;
      for (size_t j = 0; j < m; j++) buf[k][j] = static_cast<float>(src[i + j]);
    }
    fn(buf, i, m);
    if (out != nullptr)
      for (size_t j = 0; j < m; j++) static_cast<T*>(out)[i + j] = static_cast<T>(buf[K][j]);
  }
}

void unary_range(const Isa* k, UnaryOp op, mx::Dtype dt, const void* in, void* out, size_t begin, size_t end) {
  size_t n = end - begin;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    widened<T, 1>({static_cast<const T*>(in) + begin}, static_cast<T*>(out) + begin, n,
                  [&](float (*buf)[kWiden], size_t, size_t m) { k->unary(op, buf[0], buf[1], m); });
  };
  switch (dt) {
    case mx::float32:
      return k->unary(op, static_cast<const float*>(in) + begin, static_cast<float*>(out) + begin, n);
    case mx::float16: return run(mx::float16_t{});
    case mx::bfloat16: return run(mx::bfloat16_t{});
    default: return;
  }
}

// Elements [begin, end) of a binary op; a scalar operand (per `layout`) is not offset.
void binary_range(const Isa* k, BinaryOp op, Operands layout, mx::Dtype dt, const void* a, const void* b,
                  void* out, size_t begin, size_t end) {
  size_t n = end - begin;
  size_t oa = layout == Operands::scalar_a ? 0 : begin, ob = layout == Operands::scalar_b ? 0 : begin;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* ta = static_cast<const T*>(a) + oa;
    const T* tb = static_cast<const T*>(b) + ob;
    float sa = static_cast<float>(ta[0]), sb = static_cast<float>(tb[0]);
    widened<T, 2>({layout == Operands::scalar_a ? nullptr : ta, layout == Operands::scalar_b ? nullptr : tb},
                  static_cast<T*>(out) + begin, n, [&](float (*buf)[kWiden], size_t, size_t m) {
                    const float* pa = layout == Operands::scalar_a ? &sa : buf[0];
                    const float* pb = layout == Operands::scalar_b ? &sb : buf[1];
                    k->binary(op, layout, pa, pb, buf[2], m);
                  });
  };
  switch (dt) {
    case mx::float32:
      return k->binary(op, layout, static_cast<const float*>(a) + oa, static_cast<const float*>(b) + ob,
                       static_cast<float*>(out) + begin, n);
    case mx::float16: return run(mx::float16_t{});
    case mx::bfloat16: return run(mx::bfloat16_t{});
    default: return;
  }
}

float combine(ReduceOp op, float x, float y) {
  if (op == ReduceOp::sum) return x + y;
  if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<float>::quiet_NaN();
  return op == ReduceOp::max ? std::max(x, y) : std::min(x, y);
}

// The reduction of elements [begin, end) of `in`, in float32.
float reduce_range(const Isa* k, ReduceOp op, mx::Dtype dt, const void* in, size_t begin, size_t end) {
  if (dt == mx::float32) return k->reduce(op, static_cast<const float*>(in) + begin, end - begin);
  bool first = true;
  float acc = 0.0f;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    widened<T, 1>({static_cast<const T*>(in) + begin}, nullptr, end - begin,
                  [&](float (*buf)[kWiden], size_t, size_t m) {
                    float r = k->reduce(op, buf[0], m);
                    acc = first ? r : combine(op, acc, r);
                    first = false;
                  });
  };
  if (dt == mx::float16) run(mx::float16_t{});
  if (dt == mx::bfloat16) run(mx::bfloat16_t{});
  return acc;
}

void store(mx::Dtype dt, void* out, size_t i, float v) {
  switch (dt) {
    case mx::float32: static_cast<float*>(out)[i] = v; return;
    case mx::float16: static_cast<mx::float16_t*>(out)[i] = static_cast<mx::float16_t>(v); return;
    case mx::bfloat16: static_cast<mx::bfloat16_t*>(out)[i] = static_cast<mx::bfloat16_t>(v); return;
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

// `in` itself when row-contiguous, else a row-contiguous copy made on the stream first
// (MLX's kernels walk strides instead; these need dense memory).
mx::array dense(const mx::array& in, mx::cpu::CommandEncoder& enc) {
  if (in.flags().row_contiguous) return in;
  mx::array d(in.shape(), in.dtype(), nullptr, {});
  d.set_data(mx::allocator::malloc(d.nbytes()));
  enc.set_input_array(in);
  enc.set_output_array(d);
  enc.dispatch([src = in, dst = d]() mutable { densify(src, dst); });
  enc.add_temporary(d);
  return d;
}

// `out` takes the buffer of `in` when MLX may donate it, else a fresh row-contiguous one.
void alloc_like(mx::array& out, const mx::array& in) {
  if (in.flags().row_contiguous && in.is_donatable() && in.itemsize() == out.itemsize() &&
      in.data_size() == out.size()) {
    out.copy_shared_buffer(in);
    return;
  }
  out.set_data(mx::allocator::malloc(out.nbytes()));
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
    case UnaryOp::erfinv: return "EmilyErfinv";
    case UnaryOp::sqrt: return "EmilySqrt";
    case UnaryOp::rsqrt: return "EmilyRsqrt";
    case UnaryOp::negative: return "EmilyNegative";
    case UnaryOp::abs: return "EmilyAbs";
    case UnaryOp::square: return "EmilySquare";
  }
  return "EmilyUnary";
}

const char* op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::pow: return "EmilyPower";
    case BinaryOp::add: return "EmilyAdd";
    case BinaryOp::subtract: return "EmilySubtract";
    case BinaryOp::multiply: return "EmilyMultiply";
    case BinaryOp::divide: return "EmilyDivide";
    case BinaryOp::maximum: return "EmilyMaximum";
    case BinaryOp::minimum: return "EmilyMinimum";
  }
  return "EmilyBinary";
}

const char* op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "EmilySum";
    case ReduceOp::max: return "EmilyMax";
    case ReduceOp::min: return "EmilyMin";
  }
  return "EmilyReduce";
}

const char* op_name(RowOp op) {
  switch (op) {
    case RowOp::softmax_div:
    case RowOp::softmax_mul: return "EmilySoftmax";
    case RowOp::log_softmax: return "EmilyLogSoftmax";
    case RowOp::logsumexp: return "EmilyLogSumExp";
  }
  return "EmilyRows";
}

// The base of Emily's kernel primitives (is_kernel finds them by it): CPU streams only.
class KernelPrimitive : public mx::UnaryPrimitive {
 public:
  using mx::UnaryPrimitive::UnaryPrimitive;

  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("[cpu_kernels] Emily's CPU kernels do not run on a GPU stream");
  }
};

// One op of enum type Op.
template <typename Op>
class Kernel : public KernelPrimitive {
 public:
  Kernel(mx::Stream s, Op op) : KernelPrimitive(s), op_(op) {}

  const char* name() const override { return op_name(op_); }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const Kernel*>(&other);
    return o != nullptr && o->op_ == op_;
  }

  Op op() const { return op_; }

 protected:
  Op op_;
};

// One op whose output shape is fixed when the node is built (reductions, row ops).
template <typename Op>
class ShapedKernel : public Kernel<Op> {
 public:
  ShapedKernel(mx::Stream s, Op op, mx::Shape out_shape) : Kernel<Op>(s, op), shape_(std::move(out_shape)) {}

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const ShapedKernel*>(&other);
    return o != nullptr && o->op() == this->op() && o->shape_ == shape_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>&) override { return {shape_}; }

 private:
  mx::Shape shape_;
};

class FastUnary : public Kernel<UnaryOp> {
 public:
  using Kernel::Kernel;

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    auto& enc = mx::cpu::get_command_encoder(stream());
    const mx::array& given = inputs[0];
    if (given.flags().contiguous && given.is_donatable() && given.itemsize() == out.itemsize()) {
      out.copy_shared_buffer(given);
    }
    mx::array in = given.flags().contiguous ? given : dense(given, enc);
    if (!out.data_shared_ptr()) {
      out.set_data(mx::allocator::malloc(in.data_size() * out.itemsize()), in.data_size(), in.strides(),
                   in.flags());
    }
    enc.set_input_array(in);
    enc.set_output_array(out);
    enc.dispatch([src = in.data<void>(), dst = out.data<void>(), n = in.data_size(), dt = in.dtype(),
                  op = op_, k = kernel_isa()]() {
      parallel_ranges(n, n, kChunkMin, [&](size_t b, size_t e) { unary_range(k, op, dt, src, dst, b, e); });
    });
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }
};

// A binary op of two arrays of one shape and dtype (broadcast already): each is read as
// one element for all (a broadcast scalar) or as dense memory.
class FastBinary : public Kernel<BinaryOp> {
 public:
  using Kernel::Kernel;

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    auto& enc = mx::cpu::get_command_encoder(stream());
    mx::array a = inputs[0], b = inputs[1];
    bool sa = a.data_size() == 1, sb = b.data_size() == 1;
    if (sa && sb) sa = false;
    if (!sa) a = dense(a, enc);
    if (!sb) b = dense(b, enc);
    alloc_like(out, sa ? b : a);
    Operands layout = sa ? Operands::scalar_a : sb ? Operands::scalar_b : Operands::both;
    enc.set_input_array(a);
    enc.set_input_array(b);
    enc.set_output_array(out);
    enc.dispatch([pa = a.data<void>(), pb = b.data<void>(), dst = out.data<void>(), n = out.size(),
                  dt = out.dtype(), op = op_, layout, k = kernel_isa()]() {
      parallel_ranges(n, n, kChunkMin,
                      [&](size_t s, size_t e) { binary_range(k, op, layout, dt, pa, pb, dst, s, e); });
    });
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }
};

// A reduction over the trailing axes: `out` has one element per row of `cols` elements.
class FastReduce : public ShapedKernel<ReduceOp> {
 public:
  using ShapedKernel::ShapedKernel;

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    auto& enc = mx::cpu::get_command_encoder(stream());
    mx::array in = dense(inputs[0], enc);
    out.set_data(mx::allocator::malloc(out.nbytes()));
    enc.set_input_array(in);
    enc.set_output_array(out);
    enc.dispatch([src = in.data<void>(), dst = out.data<void>(), rows = out.size(), total = in.size(),
                  dt = in.dtype(), op = op_, k = kernel_isa()]() {
      size_t cols = total / rows;
      // Few long rows: each row is split into parts reduced apart, then combined.
      size_t parts = 1;
      if (total >= kParallelMin && rows < Pool::get().threads() + 1)
        parts = std::max<size_t>(1, std::min(cols / kChunkMin, 2 * (Pool::get().threads() + 1)));
      size_t part = (cols + parts - 1) / parts;
      std::vector<float> partial(rows * parts);
      parallel_ranges(rows * parts, total, std::max<size_t>(1, kChunkMin / std::min(cols, kChunkMin)),
                      [&](size_t b, size_t e) {
                        for (size_t t = b; t < e; t++) {
                          size_t r = t / parts, p = t % parts;
                          size_t lo = r * cols + p * part, hi = r * cols + std::min(cols, (p + 1) * part);
                          partial[t] = reduce_range(k, op, dt, src, lo, hi);
                        }
                      });
      for (size_t r = 0; r < rows; r++) {
        float acc = partial[r * parts];
        for (size_t p = 1; p < parts; p++) acc = combine(op, acc, partial[r * parts + p]);
        store(dt, dst, r, acc);
      }
    });
  }

};

// A row op over rows of `cols` elements: the trailing axes (logsumexp, `out` one element a
// row) or the last axis (the softmaxes, `out` the input's shape). Rows are split over the pool.
class FastRows : public ShapedKernel<RowOp> {
 public:
  using ShapedKernel::ShapedKernel;

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    auto& enc = mx::cpu::get_command_encoder(stream());
    mx::array in = dense(inputs[0], enc);
    if (op_ == RowOp::logsumexp)
      out.set_data(mx::allocator::malloc(out.nbytes()));
    else
      alloc_like(out, in);
    enc.set_input_array(in);
    enc.set_output_array(out);
    size_t rows = op_ == RowOp::logsumexp ? out.size() : in.size() / std::max<int>(1, in.shape().back());
    enc.dispatch([src = in.data<void>(), dst = out.data<void>(), rows, total = in.size(), dt = in.dtype(),
                  op = op_, k = kernel_isa()]() {
      size_t cols = total / rows;
      parallel_ranges(rows, total, std::max<size_t>(1, kChunkMin / std::min(cols, kChunkMin)),
                      [&](size_t b, size_t e) {
                        std::vector<float> buf;
                        bool f32 = dt == mx::float32;
                        if (!f32 || op == RowOp::logsumexp) buf.resize(f32 ? cols : 2 * cols);
                        for (size_t r = b; r < e; r++) row(k, op, dt, src, dst, r, cols, buf);
                      });
    });
  }


 private:
  // Row r: float32 in place; float16/bfloat16 widened into buf (input, then output).
  static void row(const Isa* k, RowOp op, mx::Dtype dt, const void* src, void* dst, size_t r, size_t cols,
                  std::vector<float>& buf) {
    bool lse = op == RowOp::logsumexp;
    if (dt == mx::float32) {
      const float* in = static_cast<const float*>(src) + r * cols;
      float* out = lse ? buf.data() : static_cast<float*>(dst) + r * cols;
      k->row(op, in, out, cols);
      if (lse) static_cast<float*>(dst)[r] = out[0];
      return;
    }
    float* a = buf.data();
    float* b = buf.data() + cols;
    auto run = [&](auto tag) {
      using T = decltype(tag);
      const T* in = static_cast<const T*>(src) + r * cols;
      for (size_t j = 0; j < cols; j++) a[j] = static_cast<float>(in[j]);
      k->row(op, a, b, cols);
      T* out = static_cast<T*>(dst);
      if (lse)
        out[r] = static_cast<T>(b[0]);
      else
        for (size_t j = 0; j < cols; j++) out[r * cols + j] = static_cast<T>(b[j]);
    };
    if (dt == mx::float16) run(mx::float16_t{});
    if (dt == mx::bfloat16) run(mx::bfloat16_t{});
  }
};

// A fused elementwise program (cpu_kernels.hpp): elements go through every step in blocks
// of kBlock, each step one vector kernel over the block, registers in per-thread buffers (L1
// resident); ranges of blocks are split over the pool.
class FastFused : public KernelPrimitive {
 public:
  static constexpr size_t kBlock = 512;

  FastFused(mx::Stream s, std::vector<LeafMode> leaves, std::vector<FusedStep> steps, mx::Shape shape)
      : KernelPrimitive(s), leaves_(std::move(leaves)), steps_(std::move(steps)), shape_(std::move(shape)) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    auto& enc = mx::cpu::get_command_encoder(stream());
    std::vector<mx::array> in;
    in.reserve(inputs.size());
    // A dense leaf holding one value for all (a folded broadcast constant) is read as a scalar.
    std::vector<LeafMode> leaves = leaves_;
    for (size_t i = 0; i < inputs.size(); i++)
      if (inputs[i].data_size() == 1) leaves[i] = LeafMode::scalar;
    bool donated = false;
    for (size_t i = 0; i < inputs.size(); i++) {
      in.push_back(leaves[i] == LeafMode::scalar ? inputs[i] : dense(inputs[i], enc));
      // Block b of the output is written after every read of block b of a dense leaf.
      if (!donated && leaves[i] == LeafMode::dense && in[i].flags().row_contiguous && in[i].is_donatable() &&
          in[i].itemsize() == out.itemsize() && in[i].data_size() == out.size()) {
        out.copy_shared_buffer(in[i]);
        donated = true;
      }
    }
    if (!donated) out.set_data(mx::allocator::malloc(out.nbytes()));
    std::vector<const float*> ptrs;
    for (auto& a : in) {
      enc.set_input_array(a);
      ptrs.push_back(a.data<float>());
    }
    enc.set_output_array(out);
    size_t cols = shape_.empty() ? 1 : static_cast<size_t>(shape_.back());
    enc.dispatch([ptrs = std::move(ptrs), dst = out.data<float>(), n = out.size(), cols, leaves = std::move(leaves),
                  steps = steps_, k = kernel_isa()]() {
      size_t units = n * steps.size();
      parallel_ranges(n, units, kChunkMin, [&](size_t begin, size_t end) {
        size_t nl = leaves.size();
        std::vector<float> bufs((nl + steps.size()) * kBlock);
        std::vector<const float*> reg(nl + steps.size());
        for (size_t i = 0; i < nl; i++)
          if (leaves[i] == LeafMode::scalar) std::fill_n(bufs.data() + i * kBlock, kBlock, ptrs[i][0]);
        for (size_t b = begin; b < end; b += kBlock) {
          size_t m = std::min(kBlock, end - b);
          for (size_t i = 0; i < nl; i++) {
            float* buf = bufs.data() + i * kBlock;
            switch (leaves[i]) {
              case LeafMode::dense: reg[i] = ptrs[i] + b; break;
              case LeafMode::scalar: reg[i] = buf; break;
              case LeafMode::row: {
                // the row's elements from b % cols on, in runs to the row's end
                size_t pos = b % cols;
                if (pos + m <= cols) {
                  reg[i] = ptrs[i] + pos;
                  break;
                }
                for (size_t j = 0; j < m; pos = 0) {
                  size_t len = std::min(m - j, cols - pos);
                  std::memcpy(buf + j, ptrs[i] + pos, len * sizeof(float));
                  j += len;
                }
                reg[i] = buf;
                break;
              }
              case LeafMode::col: {
                // one value per output row, in runs of that row's remaining elements
                size_t row = b / cols, pos = b % cols;
                for (size_t j = 0; j < m; pos = 0, row++) {
                  size_t len = std::min(m - j, cols - pos);
                  std::fill_n(buf + j, len, ptrs[i][row]);
                  j += len;
                }
                reg[i] = buf;
                break;
              }
            }
          }
          for (size_t t = 0; t < steps.size(); t++) {
            const FusedStep& st = steps[t];
            float* o = t + 1 == steps.size() ? dst + b : bufs.data() + (nl + t) * kBlock;
            if (st.binary)
              k->binary(st.binary_op, Operands::both, reg[st.x], reg[st.y], o, m);
            else
              k->unary(st.unary_op, reg[st.x], o, m);
            reg[nl + t] = o;
          }
        }
      });
    });
  }

  const char* name() const override { return "EmilyFused"; }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const FastFused*>(&other);
    return o != nullptr && o->leaves_ == leaves_ && o->steps_ == steps_ && o->shape_ == shape_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>&) override { return {shape_}; }

 private:
  std::vector<LeafMode> leaves_;
  std::vector<FusedStep> steps_;
  mx::Shape shape_;
};

// x . W^T for a quantized W: inputs x (float32, [..., cols]), w (uint32, [rows, words]) and
// the scales and biases (float32, [rows, groups]). Up to kGemvRows rows of x (decoding):
// Isa::qmatmul reads each row of W once for all of them, rows of W spread over the pool;
// more rows of x dequantize kPanelRows rows of W at a time (on the
// pool) and multiply them with OpenBLAS's sgemm.
class FastQuantizedMatmul : public KernelPrimitive {
 public:
  FastQuantizedMatmul(mx::Stream s, int bits, int group_size) : KernelPrimitive(s), bits_(bits), gs_(group_size) {}

  static constexpr size_t kGemvRows = kQuantizedRows;
  static constexpr size_t kPanelRows = 256;

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    auto& enc = mx::cpu::get_command_encoder(stream());
    mx::array x = dense(inputs[0], enc), w = dense(inputs[1], enc);
    mx::array sc = dense(inputs[2], enc), bi = dense(inputs[3], enc);
    out.set_data(mx::allocator::malloc(out.nbytes()));
    for (const auto& a : {x, w, sc, bi}) enc.set_input_array(a);
    enc.set_output_array(out);
    size_t rows = static_cast<size_t>(w.shape(0)), cols = static_cast<size_t>(x.shape(-1));
    QuantizedMatrix q{w.data<uint32_t>(), sc.data<float>(), bi.data<float>(), rows, cols, bits_,
                      static_cast<size_t>(gs_)};
    enc.dispatch([q, px = x.data<float>(), m = x.size() / cols, dst = out.data<float>(), k = kernel_isa()]() {
      size_t grain = std::max<size_t>(1, kChunkMin / q.cols);
      if (m <= kGemvRows) {
        std::vector<float> xr(m * k->qstride(q)), sums(m * (q.cols / q.group_size));
        k->qprepare(q, px, m, xr.data(), sums.data());
        parallel_ranges(q.rows, q.rows * q.cols * (m + 1), grain, [&](size_t r0, size_t r1) {
          k->qmatmul(q, xr.data(), sums.data(), m, dst, q.rows, r0, r1);
        });
        return;
      }
      std::vector<float> panel(std::min(q.rows, kPanelRows) * q.cols);
      for (size_t p0 = 0; p0 < q.rows; p0 += kPanelRows) {
        size_t pr = std::min(kPanelRows, q.rows - p0);
        parallel_ranges(pr, pr * q.cols, grain, [&](size_t r0, size_t r1) {
          for (size_t r = r0; r < r1; r++) k->dequantize_row(q, p0 + r, panel.data() + r * q.cols);
        }, false);
        cblas_sgemm(kRowMajor, kNoTrans, kTrans, static_cast<int>(m), static_cast<int>(pr), static_cast<int>(q.cols),
                    1.0f, px, static_cast<int>(q.cols), panel.data(), static_cast<int>(q.cols), 0.0f, dst + p0,
                    static_cast<int>(q.rows));
      }
    });
  }

  const char* name() const override { return "EmilyQuantizedMatmul"; }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const FastQuantizedMatmul*>(&other);
    return o != nullptr && o->bits_ == bits_ && o->gs_ == gs_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    mx::Shape shape = inputs[0].shape();
    shape.back() = inputs[1].shape(0);
    return {shape};
  }

 private:
  // CBLAS's enum values
  static constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
  int bits_, gs_;
};
#endif

std::atomic<bool> enabled{true};

}  // namespace

bool available() {
#if defined(EMILY_CPU_KERNELS)
  return kernel_isa() != nullptr;
#else
  return false;
#endif
}

const char* isa() {
#if defined(EMILY_CPU_KERNELS)
  if (auto k = kernel_isa()) return k->name;
#endif
  return nullptr;
}

bool is_kernel(const mx::Primitive& p) {
#if defined(EMILY_CPU_KERNELS)
  return dynamic_cast<const KernelPrimitive*>(&p) != nullptr;
#else
  (void)p;
  return false;
#endif
}

namespace {
// Whether a kernel may be built for dtype `dt` on stream `s`.
bool usable(mx::Dtype dt, mx::Stream s) {
#if defined(EMILY_CPU_KERNELS)
  return s.device == mx::Device::cpu && kernel_isa() != nullptr && enabled.load(std::memory_order_relaxed) &&
         (dt == mx::float32 || dt == mx::float16 || dt == mx::bfloat16);
#else
  (void)dt;
  (void)s;
  return false;
#endif
}
}  // namespace

std::optional<mx::array> unary(UnaryOp op, const mx::array& a, mx::Stream s) {
  if (!usable(a.dtype(), s)) return std::nullopt;
#if defined(EMILY_CPU_KERNELS)
  return mx::array(a.shape(), a.dtype(), std::make_shared<FastUnary>(s, op), {a});
#else
  (void)op;
  return std::nullopt;
#endif
}

std::optional<mx::array> binary(BinaryOp op, const mx::array& a, const mx::array& b, mx::Stream s) {
  auto dt = mx::promote_types(a.dtype(), b.dtype());
  if (!usable(dt, s)) return std::nullopt;
#if defined(EMILY_CPU_KERNELS)
  // Broadcasting and promotion as MLX's ops do them (they raise on shapes that do not
  // broadcast).
  auto both = mx::broadcast_arrays({mx::astype(a, dt, s), mx::astype(b, dt, s)}, s);
  auto shape = both[0].shape();
  return mx::array(std::move(shape), dt, std::make_shared<FastBinary>(s, op), std::move(both));
#else
  (void)op;
  return std::nullopt;
#endif
}

namespace {
// The shape of a reduction of `a` over `axes` when they are its trailing axes, each once.
std::optional<mx::Shape> trailing_reduction(const mx::array& a, const std::vector<int>& axes, bool keepdims) {
  if (a.size() == 0 || axes.empty()) return std::nullopt;
  int nd = static_cast<int>(a.ndim());
  std::vector<int> norm;
  for (int ax : axes) {
    if (ax < -nd || ax >= nd) return std::nullopt;  // MLX's op raises
    norm.push_back(ax < 0 ? ax + nd : ax);
  }
  std::sort(norm.begin(), norm.end());
  int lead = nd - static_cast<int>(norm.size());
  for (size_t i = 0; i < norm.size(); i++)
    if (norm[i] != lead + static_cast<int>(i)) return std::nullopt;
  mx::Shape shape(a.shape().begin(), a.shape().begin() + lead);
  if (keepdims) shape.resize(nd, 1);
  return shape;
}
}  // namespace

std::optional<mx::array> reduce(ReduceOp op, const mx::array& a, const std::vector<int>& axes, bool keepdims,
                                mx::Stream s) {
  if (!usable(a.dtype(), s)) return std::nullopt;
  auto shape = trailing_reduction(a, axes, keepdims);
  if (!shape) return std::nullopt;
#if defined(EMILY_CPU_KERNELS)
  auto sh = *shape;
  return mx::array(std::move(sh), a.dtype(), std::make_shared<FastReduce>(s, op, std::move(*shape)), {a});
#else
  (void)op;
  return std::nullopt;
#endif
}

std::optional<mx::array> logsumexp(const mx::array& a, const std::vector<int>& axes, bool keepdims, mx::Stream s) {
  if (!usable(a.dtype(), s)) return std::nullopt;
  auto shape = trailing_reduction(a, axes, keepdims);
  if (!shape) return std::nullopt;
#if defined(EMILY_CPU_KERNELS)
  auto sh = *shape;
  return mx::array(std::move(sh), a.dtype(), std::make_shared<FastRows>(s, RowOp::logsumexp, std::move(*shape)),
                   {a});
#else
  return std::nullopt;
#endif
}

std::shared_ptr<mx::Primitive> last_axis_primitive(RowOp op, const mx::Shape& shape, mx::Dtype dt, mx::Stream s) {
  if (op == RowOp::logsumexp || !usable(dt, s) || shape.empty() || shape.back() == 0) return nullptr;
#if defined(EMILY_CPU_KERNELS)
  return std::make_shared<FastRows>(s, op, shape);
#else
  return nullptr;
#endif
}

std::shared_ptr<mx::Primitive> fused_primitive(std::vector<LeafMode> leaves, std::vector<FusedStep> steps,
                                               const mx::Shape& shape, mx::Dtype dt, mx::Stream s) {
  if (dt != mx::float32 || !usable(dt, s) || steps.empty()) return nullptr;
#if defined(EMILY_CPU_KERNELS)
  return std::make_shared<FastFused>(s, std::move(leaves), std::move(steps), shape);
#else
  (void)shape;
  return nullptr;
#endif
}

std::optional<UnaryOp> unary_op(const mx::Primitive& p) {
#if defined(EMILY_CPU_KERNELS)
  if (auto* k = dynamic_cast<const FastUnary*>(&p)) return k->op();
#endif
  (void)p;
  return std::nullopt;
}

std::optional<ReduceOp> reduce_op(const mx::Primitive& p) {
#if defined(EMILY_CPU_KERNELS)
  if (auto* k = dynamic_cast<const FastReduce*>(&p)) return k->op();
#endif
  (void)p;
  return std::nullopt;
}

std::optional<mx::array> quantized_matmul(const mx::array& x, const mx::array& w, const mx::array& scales,
                                          const std::optional<mx::array>& biases, bool transpose, int group_size,
                                          int bits, const mx::array& result, mx::Stream s) {
  if (!usable(x.dtype(), s) || !usable(result.dtype(), s) || !transpose || !biases || (bits != 4 && bits != 8) ||
      group_size % 16 != 0 || w.ndim() != 2 || scales.ndim() != 2 || x.ndim() < 1 || x.size() == 0 ||
      w.dtype() != mx::uint32)
    return std::nullopt;
  mx::Shape want = x.shape();
  want.back() = w.shape(0);
  if (result.shape() != want) return std::nullopt;  // w broadcast over a batch: MLX's kernel
#if defined(EMILY_CPU_KERNELS)
  auto f32 = [&](const mx::array& a) { return mx::astype(a, mx::float32, s); };
  mx::array r(std::move(want), mx::float32, std::make_shared<FastQuantizedMatmul>(s, bits, group_size),
              {f32(x), w, f32(scales), f32(*biases)});
  return result.dtype() == mx::float32 ? r : mx::astype(r, result.dtype(), s);
#else
  (void)scales;
  (void)group_size;
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
