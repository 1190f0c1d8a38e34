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

std::optional<int> opt_int(int64_t v) {
  if (v <= 0) return std::nullopt;
  return to_int(v, "[quantize] group_size/bits");
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
    auto v = mx::quantize(w->a, opt_int(group_size), opt_int(bits), mode_of(mode), std::nullopt,
                          stream(s));
    if (v.size() > 4) throw std::runtime_error("[quantize] too many outputs");
    *n = 0;
    for (auto& a : v) check_size(a);
    for (auto& a : v) outs[(*n)++] = new emily_array{std::move(a)};
  })
}

EMILY_API int emily_dequantize(emily_stream s, const emily_array* w, const emily_array* scales,
                               emily_arrays biases, int64_t group_size, int64_t bits,
                               int64_t mode, emily_array** out) {
  EMILY_GUARD(put(out, mx::dequantize(w->a, scales->a, opt(biases), opt_int(group_size),
                                      opt_int(bits), mode_of(mode), std::nullopt, std::nullopt,
                                      stream(s))))
}

EMILY_API int emily_quantized_matmul(emily_stream s, const emily_array* x, const emily_array* w,
                                     const emily_array* scales, emily_arrays biases,
                                     bool transpose, int64_t group_size, int64_t bits,
                                     int64_t mode, emily_array** out) {
  EMILY_GUARD(put(out, mx::quantized_matmul(x->a, w->a, scales->a, opt(biases), transpose,
                                            opt_int(group_size), opt_int(bits), mode_of(mode),
                                            stream(s))))
}
}
