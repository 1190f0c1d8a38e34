// Emily's own CPU kernels (src/cpp/kernels): vectorised with SLEEF, one build per ISA
// (avx512.cc, avx2.cc), chosen at run time by cpu_kernels.cc.
#pragma once

#include <cstddef>

namespace emily::kernels {

enum class UnaryOp { exp, expm1, log, log1p, sin, cos, tanh, sigmoid, erf, sqrt, rsqrt };

namespace avx512 {
void unary_f32(UnaryOp op, const float* in, float* out, size_t n);
}
namespace avx2 {
void unary_f32(UnaryOp op, const float* in, float* out, size_t n);
}

}  // namespace emily::kernels
