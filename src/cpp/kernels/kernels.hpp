// Emily's own CPU kernels (src/cpp/kernels): vectorised with SLEEF, one build per ISA
// (avx512.cc, avx2.cc, from the same isa.hpp), chosen at run time by cpu_kernels.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace emily::kernels {

// negative, abs, square, add, subtract, multiply, divide, maximum and minimum serve fused
// elementwise programs (FastFused in cpu_kernels.cc); they give MLX's own ops' values (one
// IEEE operation; maximum/minimum: NaN from either side, a tie gives the second operand).
enum class UnaryOp { exp, expm1, log, log1p, sin, cos, tanh, sigmoid, erf, erfinv, sqrt, rsqrt, negative, abs, square };
enum class BinaryOp { pow, add, subtract, multiply, divide, maximum, minimum };
enum class ReduceOp { sum, max, min };
// Row ops over the last axis. softmax_div is e / sum(e), softmax_mul e * (1 / sum(e)) (the
// two forms composed softmaxes take), with e = exp(x - max(x)); log_softmax is
// (x - max(x)) + -log(sum(e)); logsumexp is log(sum(e)) + max(x), or max(x) where that is
// infinite. Each rounds as its composed form does in float32.
enum class RowOp { softmax_div, softmax_mul, log_softmax, logsumexp };

// How the operands of a binary kernel are laid out: both `n` elements, or one of them a
// single element applied to every element of the other.
enum class Operands { both, scalar_a, scalar_b };

// A matrix in MLX's affine quantized layout (row-major, dense): `rows` rows of `cols`
// elements, each a `bits`-bit code (4 or 8) packed 32 / bits to a word from the lowest bits;
// element (r, c) is scales[g] * code + biases[g] for the group g = r * cols / group_size +
// c / group_size. group_size is a multiple of 16.
struct QuantizedMatrix {
  const uint32_t* w;
  const float* scales;
  const float* biases;
  size_t rows, cols;
  int bits;
  size_t group_size;
};

// The most rows of x Isa::qmatmul takes at once.
constexpr size_t kQuantizedRows = 4;

// One ISA's f32 kernels. Each works on dense memory and on the calling thread.
struct Isa {
  const char* name;
  void (*unary)(UnaryOp op, const float* in, float* out, size_t n);
  void (*binary)(BinaryOp op, Operands layout, const float* a, const float* b, float* out, size_t n);
  // The reduction of `n` elements (n > 0); NaN in, NaN out for max and min.
  float (*reduce)(ReduceOp op, const float* in, size_t n);
  // One row of `n` elements (n > 0) into `out` (n elements; logsumexp: out[0], with out[1..n)
  // used as scratch).
  void (*row)(RowOp op, const float* in, float* out, size_t n);
  // Row r of q as floats into out (q.cols), each element code * scale + bias rounded once.
  void (*dequantize_row)(const QuantizedMatrix& q, size_t r, float* out);
  // x as qmatmul reads it: qstride(q) floats per row of x, and qprepare(q, x, m, xr, sums)
  // writes m rows of x (m rows of q.cols, row-major) into xr (m * qstride(q)) and their group
  // sums into sums (m * q.cols / q.group_size).
  size_t (*qstride)(const QuantizedMatrix& q);
  void (*qprepare)(const QuantizedMatrix& q, const float* x, size_t m, float* xr, float* sums);
  // out[i * ldo + r] = x[i] . (row r of q) for i < m <= kQuantizedRows and r in [r0, r1), x
  // prepared by qprepare. q.group_size is a power of two.
  void (*qmatmul)(const QuantizedMatrix& q, const float* xr, const float* sums, size_t m, float* out, size_t ldo,
                  size_t r0, size_t r1);
};

namespace avx512 {
extern const Isa isa;
}
namespace avx2 {
extern const Isa isa;
}

}  // namespace emily::kernels
