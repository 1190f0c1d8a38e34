// Emily's own CPU kernels (src/cpp/kernels): vectorised with SLEEF, one build per ISA
// (avx512.cc, avx2.cc, from the same isa.hpp), chosen at run time by cpu_kernels.cc.
#pragma once

#include <cstddef>

namespace emily::kernels {

enum class UnaryOp { exp, expm1, log, log1p, sin, cos, tanh, sigmoid, erf, sqrt, rsqrt };
enum class BinaryOp { pow };
enum class ReduceOp { sum, max, min };

// How the operands of a binary kernel are laid out: both `n` elements, or one of them a
// single element applied to every element of the other.
enum class Operands { both, scalar_a, scalar_b };

// One ISA's f32 kernels. Each works on dense memory and on the calling thread.
struct Isa {
  const char* name;
  void (*unary)(UnaryOp op, const float* in, float* out, size_t n);
  void (*binary)(BinaryOp op, Operands layout, const float* a, const float* b, float* out, size_t n);
  // The reduction of `n` elements (n > 0); NaN in, NaN out for max and min.
  float (*reduce)(ReduceOp op, const float* in, size_t n);
};

namespace avx512 {
extern const Isa isa;
}
namespace avx2 {
extern const Isa isa;
}

}  // namespace emily::kernels
