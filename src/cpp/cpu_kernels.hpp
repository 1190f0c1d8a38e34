// Emily's CPU kernels as MLX primitives (cpu_kernels.cc; the kernels are in src/cpp/kernels).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "kernels/kernels.hpp"
#include "shim.hpp"

namespace emily::kernels {

// Whether this build has the kernels and this CPU runs them.
bool available();

// The instruction set of the kernels in use ("avx512", "avx2"), or nullptr without them.
const char* isa();

// Whether `p` is one of these kernels' primitives (cost.cc weighs them).
bool is_kernel(const mx::Primitive& p);

// The array computing `op` of `a` with Emily's kernel, or nullopt where MLX's own primitive
// is to be used (a GPU stream, an integer or float64 dtype, no kernels for this CPU).
std::optional<mx::array> unary(UnaryOp op, const mx::array& a, mx::Stream s);

// The same for `op` of `a` and `b` (promoted to one dtype and broadcast as MLX's ops do).
std::optional<mx::array> binary(BinaryOp op, const mx::array& a, const mx::array& b, mx::Stream s);

// The same for the reduction of `a` over `axes` when they are its trailing axes (each once,
// negative ones counted from the end; nullopt for others, and for an empty `a`).
std::optional<mx::array> reduce(ReduceOp op, const mx::array& a, const std::vector<int>& axes, bool keepdims,
                                mx::Stream s);

// The same for logsumexp over the trailing axes of `a`.
std::optional<mx::array> logsumexp(const mx::array& a, const std::vector<int>& axes, bool keepdims, mx::Stream s);

// The same for MLX's quantized_matmul(x, w, scales, biases, transpose, group_size, bits) in
// affine mode, whose MLX node is `result` (built first: MLX checks the operands): Emily's
// kernel for a 2-D w of 4 or 8 bits with `transpose`, x float32/float16/bfloat16 (computed
// in float32).
std::optional<mx::array> quantized_matmul(const mx::array& x, const mx::array& w, const mx::array& scales,
                                          const std::optional<mx::array>& biases, bool transpose, int group_size,
                                          int bits, const mx::array& result, mx::Stream s);

// A primitive computing `op` (a softmax) over the last axis of an array of `shape` and `dt`,
// for program rewrites (program.cc); null where MLX's primitives are to be used.
std::shared_ptr<mx::Primitive> last_axis_primitive(RowOp op, const mx::Shape& shape, mx::Dtype dt, mx::Stream s);

// Fused elementwise programs over float32 arrays of one shape (program.cc builds them from
// tapes). Registers: the leaves (the primitive's inputs, in order), then each step's result;
// the last step's is the output. A leaf is read as dense memory of the output's size, as one
// value for all, as a row (its `cols` elements repeated: shape [..1.., cols]) or as a column
// (one element per row of the output's last axis: the output's shape with last dim 1).
enum class LeafMode { dense, scalar, row, col };
struct FusedStep {
  bool binary;
  UnaryOp unary_op;
  BinaryOp binary_op;
  uint32_t x, y;
  bool operator==(const FusedStep& o) const {
    return binary == o.binary && x == o.x && y == o.y &&
           (binary ? binary_op == o.binary_op : unary_op == o.unary_op);
  }
};
std::shared_ptr<mx::Primitive> fused_primitive(std::vector<LeafMode> leaves, std::vector<FusedStep> steps,
                                               const mx::Shape& shape, mx::Dtype dt, mx::Stream s);

// The op of one of these kernels' primitives, or nullopt for any other primitive.
std::optional<UnaryOp> unary_op(const mx::Primitive& p);
std::optional<ReduceOp> reduce_op(const mx::Primitive& p);

}  // namespace emily::kernels
