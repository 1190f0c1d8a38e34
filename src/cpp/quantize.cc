// Quantization, declared in src/ops/quantize.ops. group_size/bits <= 0 = the mode's
// default. biases: a list of 0 or 1 arrays (affine mode has biases).
#include "cpu_kernels.hpp"
#include "shim.hpp"

using namespace emily;

namespace {

std::string mode_of(emily_quantize_mode mode) {
  switch (mode) {
    case EMILY_QUANTIZE_MODE_AFFINE: return "affine";
    case EMILY_QUANTIZE_MODE_MXFP4: return "mxfp4";
    case EMILY_QUANTIZE_MODE_MXFP8: return "mxfp8";
    case EMILY_QUANTIZE_MODE_NVFP4: return "nvfp4";
  }
  throw std::invalid_argument("[quantize] unknown mode " + std::to_string(static_cast<int>(mode)));
}

// group_size and bits checked against what the mode supports (MLX divides by both before
// it checks them, and its affine dequantize/matmul kernels take any value): affine takes
// group sizes 32, 64, 128 and 2, 3, 4, 5, 6 or 8 bits; mxfp4 32 and 4; mxfp8 32 and 8;
// nvfp4 16 and 4. <= 0 = the mode's default.
std::pair<int, int> params(const char* op, emily_quantize_mode mode, int64_t group_size, int64_t bits) {
  int gs, b;
  std::vector<int> sizes, widths;
  switch (mode) {
    case EMILY_QUANTIZE_MODE_AFFINE: gs = 64, b = 4, sizes = {32, 64, 128}, widths = {2, 3, 4, 5, 6, 8}; break;
    case EMILY_QUANTIZE_MODE_MXFP4: gs = 32, b = 4, sizes = {32}, widths = {4}; break;
    case EMILY_QUANTIZE_MODE_MXFP8: gs = 32, b = 8, sizes = {32}, widths = {8}; break;
    default: gs = 16, b = 4, sizes = {16}, widths = {4}; break;
  }
  auto pick = [&](int64_t v, int dflt, const std::vector<int>& ok, const char* what) {
    if (v <= 0) return dflt;
    for (int o : ok)
      if (v == o) return o;
    std::string list;
    for (int o : ok) list += (list.empty() ? "" : ", ") + std::to_string(o);
    throw std::invalid_argument(std::string("[") + op + "] " + what + " " + std::to_string(v) +
                                " is not supported by mode " + mode_of(mode) + " (supported: " +
                                list + ")");
  };
  return {pick(group_size, gs, sizes, "group_size"), pick(bits, b, widths, "bits")};
}

std::optional<mx::array> opt(emily_arrays v) {
  if (v.len > 1) throw std::invalid_argument("[quantize] biases must be a list of 0 or 1 arrays");
  if (v.len == 0) return std::nullopt;
  return v.ptr[0]->a;
}

// The quantized matrices' operands checked before MLX reads them: MLX compares w's batch
// shape with the first entries of scales' shape without checking that scales has them.
void check_quantized(const char* op, const mx::array& w, const mx::array& scales,
                     const std::optional<mx::array>& biases) {
  auto shp = [](const mx::array& a) {
    std::string out;
    for (auto d : a.shape()) out += "[" + std::to_string(d) + "]";
    return out;
  };
  if (w.ndim() < 2)
    throw std::invalid_argument(std::string("[") + op + "] the quantized matrix w must have at least 2 "
                                "dimensions, got shape " + shp(w));
  if (scales.ndim() != w.ndim())
    throw std::invalid_argument(std::string("[") + op + "] scales must have as many dimensions as w (" +
                                std::to_string(w.ndim()) + "), got shape " + shp(scales));
  if (biases && biases->shape() != scales.shape())
    throw std::invalid_argument(std::string("[") + op + "] biases must have the shape of scales " +
                                shp(scales) + ", got " + shp(*biases));
}

}  // namespace

extern "C" {

// -> [w_q, scales, biases] (affine) or [w_q, scales].
EMILY_API int emily_quantize(emily_stream s, const emily_array* w, int64_t group_size,
                             int64_t bits, emily_quantize_mode mode, emily_outs outs) {
  EMILY_GUARD({
    auto md = mode_of(mode);
    auto [gs, b] = params("quantize", mode, group_size, bits);
    auto v = mx::quantize(w->a, gs, b, md, std::nullopt, stream(s));
    put_all(outs, std::move(v));
  })
}

EMILY_API int emily_dequantize(emily_stream s, const emily_array* w, const emily_array* scales,
                               emily_arrays biases, int64_t group_size, int64_t bits,
                               emily_quantize_mode mode, emily_array** out) {
  EMILY_GUARD({
    auto md = mode_of(mode);
    auto [gs, b] = params("dequantize", mode, group_size, bits);
    put(out, mx::dequantize(w->a, scales->a, opt(biases), gs, b, md, std::nullopt, std::nullopt,
                            stream(s)));
  })
}

EMILY_API int emily_quantized_matmul(emily_stream s, const emily_array* x, const emily_array* w,
                                     const emily_array* scales, emily_arrays biases,
                                     bool transpose, int64_t group_size, int64_t bits,
                                     emily_quantize_mode mode, emily_array** out) {
  EMILY_GUARD({
    auto md = mode_of(mode);
    auto [gs, b] = params("quantized_matmul", mode, group_size, bits);
    check_quantized("quantized_matmul", w->a, scales->a, opt(biases));
    auto st = stream(s);
    auto bi = opt(biases);
    auto r = mx::quantized_matmul(x->a, w->a, scales->a, bi, transpose, gs, b, md, st);
    std::optional<mx::array> fast;
    if (mode == EMILY_QUANTIZE_MODE_AFFINE)
      fast = kernels::quantized_matmul(x->a, w->a, scales->a, bi, transpose, gs, b, r, st);
    put(out, fast ? std::move(*fast) : std::move(r));
  })
}

// gather_qmm(x, w_q, scales, biases, lhs_indices, rhs_indices, transpose, group_size, bits,
// mode, sorted_indices): quantized_matmul per (broadcast) index pair, x's matrix lhs[i]
// times the dequantized matrix rhs[i] of w's batch. Index values are made safe
// (matrix_indices: clamped, negatives from the end).
EMILY_API int emily_gather_qmm(emily_stream s, const emily_array* x, const emily_array* w,
                               const emily_array* scales, emily_arrays biases,
                               emily_arrays lhs_indices, emily_arrays rhs_indices, bool transpose,
                               int64_t group_size, int64_t bits, emily_quantize_mode mode,
                               bool sorted_indices, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    auto md = mode_of(mode);
    auto [gs, b] = params("gather_qmm", mode, group_size, bits);
    auto bs = opt(biases);
    check_quantized("gather_qmm", w->a, scales->a, bs);
    auto lhs = optional_array(lhs_indices, "gather_qmm", "lhs_indices");
    auto rhs = optional_array(rhs_indices, "gather_qmm", "rhs_indices");
    if (x->a.ndim() < 2 && (lhs || rhs))
      throw std::invalid_argument("[gather_qmm] x must have at least 2 dimensions");
    if (lhs) lhs = matrix_indices(*lhs, batch_count(x->a), "gather_qmm", st);
    if (rhs) rhs = matrix_indices(*rhs, batch_count(w->a), "gather_qmm", st);
    auto r = mx::gather_qmm(x->a, w->a, scales->a, bs, lhs, rhs, transpose, gs, b, md,
                            std::nullopt, sorted_indices, st);
    // MLX's kernels compute in these types (float64 fails at evaluation).
    if (r.dtype() != mx::float32 && r.dtype() != mx::float16 && r.dtype() != mx::bfloat16) {
      std::ostringstream msg;
      msg << "[gather_qmm] computes in float32, float16 or bfloat16, not " << r.dtype();
      throw std::invalid_argument(msg.str());
    }
    put(out, std::move(r));
  })
}
}
