// Internal helpers shared by the op-family translation units.
#pragma once
#include <exception>
#include <string>

#include "emily.h"
#include "mlx/mlx.h"

namespace mx = mlx::core;

// Marks the C entry points of the op families.
#define EMILY_API __attribute__((visibility("default")))

struct emily_array {
  mx::array a;
};

namespace emily {

void set_error(const char* msg);

mx::Dtype to_dtype(int32_t code);

// A new MLX buffer of `nbytes` (bridge.cc). Throws, rather than returning a null buffer MLX
// would write through, when it does not fit under MLX's memory limit or malloc fails.
mx::allocator::Data checked_malloc(size_t nbytes, const char* what);
// Throws when evaluating `roots` would need one buffer larger than MLX's memory limit allows
// (bridge.cc): on the CPU, MLX writes through the null buffer a failed malloc returns.
void guard_memory(emily_arrays roots);
int32_t from_dtype(mx::Dtype d);

inline mx::Stream stream(emily_stream s) {
  return mx::Stream(s.index, s.device == 1 ? mx::Device::gpu : mx::Device::cpu);
}

inline mx::Shape shape(emily_ints v) {
  mx::Shape out;
  out.reserve(v.len);
  for (size_t i = 0; i < v.len; i++) out.push_back(static_cast<mx::ShapeElem>(v.ptr[i]));
  return out;
}

inline std::vector<int> ints(emily_ints v) {
  return std::vector<int>(v.ptr, v.ptr + v.len);
}

inline std::vector<mx::array> arrays(emily_arrays v) {
  std::vector<mx::array> out;
  out.reserve(v.len);
  for (size_t i = 0; i < v.len; i++) out.push_back(v.ptr[i]->a);
  return out;
}

inline int put(emily_array** out, mx::array&& a) {
  *out = new emily_array{std::move(a)};
  return 0;
}

}  // namespace emily

// Runs `body`, turning any C++ exception into a non-zero return and a message.
#define EMILY_GUARD(body)                                 \
  try {                                                   \
    body;                                                 \
    return 0;                                             \
  } catch (const std::exception& e) {                     \
    emily::set_error(e.what());                           \
    return 1;                                             \
  } catch (...) {                                         \
    emily::set_error("unknown C++ exception");            \
    return 1;                                             \
  }
