// Quantization. The functions mirror quantize_table! in src/ops/quantize.rs.
// mode codes: 0 = "affine", 1 = "mxfp4", 2 = "mxfp8", 3 = "nvfp4". group_size/bits <= 0 =
// the mode's default. biases: a list of 0 or 1 arrays (affine mode has biases).
#include "shim.hpp"

using namespace emily;

namespace {

std::string mode_of(int64_t code) {
  switch (code) {
    case 0: return "affine";
    case 1: return "mxfp4";
    case 2: return "mxfp8";
    case 3: return "nvfp4";
  }
  throw std::invalid_argument("[quantize] mode must be 0 (affine), 1 (mxfp4), 2 (mxfp8) or "
                              "3 (nvfp4), got " + std::to_string(code));
}

// group_size and bits checked against what the mode supports (MLX divides by both before
// it checks them, and its affine dequantize/matmul kernels take any value): affine takes
// group sizes 32, 64, 128 and 2, 3, 4, 5, 6 or 8 bits; mxfp4 32 and 4; mxfp8 32 and 8;
// nvfp4 16 and 4. <= 0 = the mode's default.
std::pair<int, int> params(const char* op, int64_t mode, int64_t group_size, int64_t bits) {
  int gs, b;
  std::vector<int> sizes, widths;
  switch (mode) {
    case 0: gs = 64, b = 4, sizes = {32, 64, 128}, widths = {2, 3, 4, 5, 6, 8}; break;
    case 1: gs = 32, b = 4, sizes = {32}, widths = {4}; break;
    case 2: gs = 32, b = 8, sizes = {32}, widths = {8}; break;
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

}  // namespace

extern "C" {

// -> [w_q, scales, biases] (affine) or [w_q, scales].
EMILY_API int emily_quantize(emily_stream s, const emily_array* w, int64_t group_size,
                             int64_t bits, int64_t mode, emily_array** outs, size_t* n) {
  EMILY_GUARD({
    auto md = mode_of(mode);
    auto [gs, b] = params("quantize", mode, group_size, bits);
    auto v = mx::quantize(w->a, gs, b, md, std::nullopt, stream(s));
    put_all(outs, n, std::move(v));
  })
}

EMILY_API int emily_dequantize(emily_stream s, const emily_array* w, const emily_array* scales,
                               emily_arrays biases, int64_t group_size, int64_t bits,
                               int64_t mode, emily_array** out) {
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
                                     int64_t mode, emily_array** out) {
  EMILY_GUARD({
    auto md = mode_of(mode);
    auto [gs, b] = params("quantized_matmul", mode, group_size, bits);
    put(out, mx::quantized_matmul(x->a, w->a, scales->a, opt(biases), transpose, gs, b, md,
                                  stream(s)));
  })
}
}
