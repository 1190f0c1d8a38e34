// The bridge's C++ side: foreign memory wrapped without a copy, the graph scan run before
// every evaluation (memory guard, inputs of other workers, donation candidates), and the
// allocator figures.
#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mlx/primitives.h"
#include "cost.hpp"
#include "shim.hpp"

namespace {

// The reference count of an array's descriptor. mx::array is a single
// std::shared_ptr<ArrayDesc> and does not expose its use count (is_donatable() reads it
// privately), so we read it through the shared_ptr layout, checked at compile time for the
// size and at run time by `use_count_works`.
long desc_use_count(const mx::array& a) {
  static_assert(sizeof(mx::array) == sizeof(std::shared_ptr<void>),
                "mx::array is expected to be one shared_ptr");
  return reinterpret_cast<const std::shared_ptr<void>*>(&a)->use_count();
}

bool use_count_works() {
  static const bool ok = [] {
    try {
      mx::array a(1.0f);
      if (desc_use_count(a) != 1) return false;
      mx::array b = a;
      bool two = desc_use_count(a) == 2;
      return two && desc_use_count(b) == 2;
    } catch (...) {
      return false;
    }
  }();
  return ok;
}

// Whether MLX's allocator is the common CPU allocator (no GPU backend): its Buffer points at
// a size_t header holding the allocation's size, and raw_ptr() is the byte after it. Only
// then can a Buffer wrap foreign memory (see wrap_external).
bool cpu_header_layout() {
  static const bool ok = [] {
    try {
      auto d = mx::allocator::malloc(64);
      auto b = d.buffer();
      if (b.ptr() == nullptr || !d.is_owned()) return false;
      size_t header = *static_cast<const size_t*>(b.ptr());
      return header >= 64 && mx::allocator::allocator().size(b) == header &&
             b.raw_ptr() == static_cast<char*>(b.ptr()) + sizeof(size_t);
    } catch (...) {
      return false;
    }
  }();
  return ok;
}

size_t checked_nbytes(const mx::Shape& s, mx::Dtype dt) {
  size_t n = 1;
  for (auto d : s) {
    if (d < 0) throw std::invalid_argument("negative dimension in shape");
    n *= static_cast<size_t>(d);
  }
  return n * dt.size();
}

// Bytes one new buffer may take: MLX's memory limit less what is in use. When MLX's count
// of bytes in use is past the limit (or wrong: an out-of-bounds write by a kernel corrupts
// the size headers it adds and subtracts), only the limit itself: MLX paces evaluation
// past the limit on its own, and a malloc fails only for sizes near the machine's memory.
size_t alloc_budget() {
  size_t limit = mx::get_memory_limit();
  size_t active = mx::get_active_memory();
  return limit > active ? limit - active : limit;
}

[[noreturn]] void over_budget(const char* what, size_t nbytes) {
  throw std::runtime_error(std::string("[emily] ") + what + " needs a buffer of " + std::to_string(nbytes) +
                           " bytes but MLX's memory limit is " + std::to_string(mx::get_memory_limit()) +
                           " bytes with " + std::to_string(mx::get_active_memory()) +
                           " bytes in use (see Emily.Memory.set_memory_limit/1)");
}

}  // namespace

namespace emily {

// A new MLX buffer of `nbytes`, refused (an exception, never a null buffer that MLX would
// write through) when it does not fit under the memory limit or malloc fails.
mx::allocator::Data checked_malloc(size_t nbytes, const char* what) {
  if (nbytes > alloc_budget()) over_budget(what, nbytes);
  auto d = mx::allocator::malloc(nbytes);
  if (nbytes > 0 && d.buffer().ptr() == nullptr) throw std::runtime_error(std::string("[emily] ") + what + ": unable to allocate " + std::to_string(nbytes) + " bytes");
  return d;
}


size_t scan(emily_arrays roots, const int32_t* own, size_t n_own, bool want_candidates, void* ctx,
            void (*on_foreign)(void*, emily_array*, int32_t, int32_t), void (*on_candidate)(void*, uintptr_t),
            Cost* cost = nullptr) {
  size_t budget = alloc_budget();
  size_t foreign = 0;
  std::vector<const mx::array*> stack;
  std::unordered_set<uintptr_t> seen;
  // Evaluated inputs of the nodes to run (with one consumer), and how many input slots of
  // those nodes refer to each.
  std::unordered_map<uintptr_t, std::pair<const mx::array*, const mx::array*>> inputs;
  std::unordered_map<uintptr_t, long> slots;
  for (size_t i = 0; i < roots.len; i++) stack.push_back(&roots.ptr[i]->a);
  auto is_own = [&](const mx::Stream& st) {
    if (own == nullptr) return true;
    for (size_t i = 0; i < n_own; i++)
      if (own[i] == st.index) return true;
    return false;
  };
  while (!stack.empty()) {
    const mx::array* a = stack.back();
    stack.pop_back();
    if (!seen.insert(a->id()).second) continue;
    if (a->status() != mx::array::unscheduled) continue;
    // Nothing computes it (a program placeholder): the caller's graph is wrong. MLX would
    // throw the same as a runtime_error, which would read as a failure while running.
    if (!a->has_primitive())
      throw std::invalid_argument(
          "[eval] Attempting to eval an array without a primitive (it depends on a program "
          "placeholder, which has no data)");
    const auto& st = a->primitive().stream();
    if (own == nullptr) check_owned(st);
    if (!is_own(st)) {
      foreign++;
      if (on_foreign) on_foreign(ctx, new emily_array{*a}, st.index, st.device == mx::Device::gpu ? 1 : 0);
      continue;
    }
    if (cost) add_cost(*cost, *a);
    size_t need = a->nbytes();
    for (const auto& s : a->siblings()) need = std::max(need, s.nbytes());
    if (need > budget) over_budget((std::string("evaluating ") + a->primitive().name()).c_str(), need);
    for (const auto& in : a->inputs()) {
      if (want_candidates && in.status() != mx::array::unscheduled) {
        slots[in.id()] += 1;
        inputs.try_emplace(in.id(), &in, a);
      }
      stack.push_back(&in);
    }
  }
  if (!want_candidates || foreign > 0 || !use_count_works() || on_candidate == nullptr) return foreign;
  // An evaluated input MLX could donate to a consumer (same item size, buffer no larger than
  // the output plus MLX's 16 KiB slack, owned by the allocator) but for exactly one more
  // reference than the graph's own input slots: on its descriptor or, through another
  // descriptor, on its data. The caller reports those whose buffer the ledger holds.
  for (const auto& [id, p] : inputs) {
    const mx::array& in = *p.first;
    const mx::array& consumer = *p.second;
    const auto& data = in.data_shared_ptr();
    if (!data || !data->is_owned()) continue;
    if (in.itemsize() != consumer.itemsize()) continue;
    if (in.buffer_size() > consumer.nbytes() + 16384) continue;
    long k = slots[id];
    long desc = desc_use_count(in);
    long refs = data.use_count();
    if ((desc == k + 1 && refs == 1) || (desc == k && refs == 2))
      on_candidate(ctx, reinterpret_cast<uintptr_t>(data.get()));
  }
  return foreign;
}

void guard_memory(emily_arrays roots) { scan(roots, nullptr, 0, false, nullptr, nullptr, nullptr); }

void eval_awake(const std::vector<mx::array>& outs, int yield_us) {
  std::vector<mx::array> todo;
  for (const auto& o : outs)
    if (o.status() == mx::array::unscheduled) todo.push_back(o);
  if (!todo.empty()) mx::async_eval(todo);
  auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(yield_us);
  auto done = [&] {
    for (const auto& o : outs)
      if (!o.is_available()) return false;
    return true;
  };
  while (!done() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  for (auto o : outs) o.wait();
}

}  // namespace emily

using namespace emily;

extern "C" {

int emily_external_mode(void) {
  if (cpu_header_layout()) return 1;
  return 0;
}

int emily_use_count_works(void) { return use_count_works() ? 1 : 0; }

int emily_from_external(void* data, emily_ints shp, int32_t dtype, void (*release)(void*), void* ctx,
                        int32_t* aliased, emily_array** out) {
  // `release(ctx)` runs exactly once whatever happens: when MLX frees the array, right after
  // a copy, or before returning an error.
  bool handed = false;
  try {
    *aliased = 0;
    auto dt = to_dtype(dtype);
    auto s = shape(shp);
    size_t n = checked_nbytes(s, dt);
    bool aligned = reinterpret_cast<uintptr_t>(data) % 8 == 0;
    if (aligned && n > 0 && cpu_header_layout()) {
      // The CPU allocator reads a size header at buffer.ptr() and the data at raw_ptr() =
      // ptr + 8, then the array's byte offset. We give MLX a header block of our own whose
      // size field is the data's size, and an offset from its raw_ptr to the foreign data.
      // The Data is not owned (a deleter, not the allocator, frees it), so MLX never donates
      // it: nothing ever writes into the foreign memory.
      auto* h = static_cast<size_t*>(std::malloc(2 * sizeof(size_t)));
      if (h == nullptr) throw std::bad_alloc();
      h[0] = n;
      h[1] = 0;
      mx::array a(mx::allocator::Data(mx::allocator::Buffer(nullptr), nullptr), std::move(s), dt);
      auto strides = a.strides();
      auto flags = a.flags();
      auto data_size = a.data_size();
      mx::allocator::Buffer hb(h);
      int64_t offset = static_cast<char*>(data) - static_cast<char*>(hb.raw_ptr());
      mx::allocator::Data d(hb, [h, release, ctx](mx::allocator::Buffer) {
        release(ctx);
        std::free(h);
      });
      handed = true;
      a.set_data(std::move(d), data_size, std::move(strides), flags, offset);
      if (a.data<void>() != data || a.is_donatable() || a.buffer_size() != n)
        throw std::runtime_error("[emily] foreign memory self-check failed");
      *aliased = 1;
      put(out, std::move(a));
      return 0;
    }
    if (aligned && n > 0 && !cpu_header_layout()) {
      // A GPU allocator (Metal) may wrap the memory itself.
      auto probe = mx::allocator::make_buffer(data, n);
      if (probe.ptr() != nullptr) {
        mx::allocator::release(probe);
        handed = true;
        mx::array a(data, std::move(s), dt, [release, ctx](void*) { release(ctx); });
        *aliased = a.data<void>() == data ? 1 : 0;
        put(out, std::move(a));
        return 0;
      }
    }
    // One copy.
    auto buf = checked_malloc(n, "from_binary");
    if (n) std::memcpy(buf.buffer().raw_ptr(), data, n);
    handed = true;
    release(ctx);
    put(out, mx::array(std::move(buf), std::move(s), dt));
    return 0;
  } catch (const std::exception& e) {
    if (!handed) release(ctx);
    set_error(e);
    return 1;
  } catch (...) {
    if (!handed) release(ctx);
    set_error("unknown C++ exception");
    return 1;
  }
}

int emily_graph_scan(emily_arrays roots, const int32_t* own, size_t n_own, int flags, void* ctx,
                     void (*on_foreign)(void*, emily_array*, int32_t, int32_t),
                     void (*on_candidate)(void*, uintptr_t), int* evaluated) {
  EMILY_GUARD({
    EvalGuard table(stream_table_lock());
    *evaluated = 0;
    Cost cost;
    size_t foreign = scan(roots, own, n_own, flags & 1, ctx, on_foreign, on_candidate, (flags & 4) ? &cost : nullptr);
    if ((flags & 4) && !is_cheap(cost)) {
      *evaluated = -1;
      return 0;
    }
    if (foreign == 0 && (flags & 2)) {
      // A cheap graph is evaluated by a caller standing in for the worker (a BEAM
      // scheduler thread): awake, and only what is unscheduled (see eval_awake).
      if (flags & 4)
        eval_awake(arrays(roots));
      else
        mx::eval(arrays(roots));
      *evaluated = 1;
    }
  })
}

}  // extern "C"
