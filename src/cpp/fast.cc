// Fused ops (mlx::core::fast), declared in src/ops/fast.ops.
// Optional arrays arrive as lists of 0 or 1 arrays.
#include "mlx/fast.h"
#include "shim.hpp"

using namespace emily;

namespace {

std::optional<mx::array> opt(emily_arrays v, const char* op, const char* what) {
  if (v.len > 1)
    throw std::invalid_argument(std::string("[") + op + "] " + what +
                                " must be a list of 0 or 1 arrays");
  if (v.len == 0) return std::nullopt;
  return v.ptr[0]->a;
}

}  // namespace

extern "C" {

EMILY_API int emily_rms_norm(emily_stream s, const emily_array* x, emily_arrays weight,
                             double eps, emily_array** out) {
  EMILY_GUARD(put(out, mx::fast::rms_norm(x->a, opt(weight, "rms_norm", "weight"),
                                          static_cast<float>(eps), stream(s))))
}

EMILY_API int emily_layer_norm(emily_stream s, const emily_array* x, emily_arrays weight,
                               emily_arrays bias, double eps, emily_array** out) {
  EMILY_GUARD(put(out, mx::fast::layer_norm(x->a, opt(weight, "layer_norm", "weight"),
                                            opt(bias, "layer_norm", "bias"),
                                            static_cast<float>(eps), stream(s))))
}

// base is ignored when freqs are given (MLX takes one or the other).
EMILY_API int emily_rope(emily_stream s, const emily_array* x, int64_t dims, bool traditional,
                         double base, double scale, int64_t offset, emily_arrays freqs,
                         emily_array** out) {
  EMILY_GUARD({
    auto f = opt(freqs, "rope", "freqs");
    std::optional<float> b;
    if (!f) b = static_cast<float>(base);
    put(out, mx::fast::rope(x->a, to_int(dims, "[rope] dims"), traditional, b,
                            static_cast<float>(scale), to_int(offset, "[rope] offset"), f, stream(s)));
  })
}

EMILY_API int emily_rope_offset(emily_stream s, const emily_array* x, int64_t dims,
                                bool traditional, double base, double scale,
                                const emily_array* offset, emily_arrays freqs,
                                emily_array** out) {
  EMILY_GUARD({
    auto f = opt(freqs, "rope", "freqs");
    std::optional<float> b;
    if (!f) b = static_cast<float>(base);
    put(out, mx::fast::rope(x->a, to_int(dims, "[rope] dims"), traditional, b,
                            static_cast<float>(scale), offset->a, f, stream(s)));
  })
}

// mask: [] or [additive float mask / boolean keep-mask]; causal and a mask are exclusive.
EMILY_API int emily_scaled_dot_product_attention(emily_stream s, const emily_array* q,
                                                 const emily_array* k, const emily_array* v,
                                                 double scale, bool causal, emily_arrays mask,
                                                 emily_arrays sinks, emily_array** out) {
  EMILY_GUARD({
    // MLX takes n_heads % n_kv_heads before looking at the sizes.
    if (k->a.ndim() == 4 && k->a.shape(1) == 0)
      throw std::invalid_argument("[scaled_dot_product_attention] keys need at least one head");
    auto m = opt(mask, "scaled_dot_product_attention", "mask");
    if (causal && m)
      throw std::invalid_argument(
          "[scaled_dot_product_attention] give either causal or a mask array, not both");
    std::string mode = m ? "array" : (causal ? "causal" : "");
    put(out, mx::fast::scaled_dot_product_attention(
                 q->a, k->a, v->a, static_cast<float>(scale), mode, m,
                 opt(sinks, "scaled_dot_product_attention", "sinks"), false, stream(s)));
  })
}

// Target class indices are clamped into range like a gather's (negatives in [-C, -1] count
// from the end): MLX reads the logit at each target unchecked.
EMILY_API int emily_cross_entropy(emily_stream s, const emily_array* logits,
                                  const emily_array* targets, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    const auto& x = logits->a;
    const auto& t = targets->a;
    if (t.dtype() == mx::bool_ || !mx::issubdtype(t.dtype(), mx::integer))
      throw std::invalid_argument("[cross_entropy] targets must be integer class indices");
    if (x.ndim() < 1) throw std::invalid_argument("[cross_entropy] logits need at least one dimension");
    int64_t c = x.shape(-1);
    if (c == 0) {
      if (t.size() != 0) throw std::invalid_argument("[cross_entropy] logits have no classes");
      put(out, mx::fast::cross_entropy(x, t, st));
      return 0;
    }
    auto t64 = mx::astype(t, mx::int64, st);
    if (t.dtype() == mx::uint64) t64 = mx::astype(mx::minimum(t, mx::array(static_cast<uint64_t>(c), mx::uint64), st), mx::int64, st);
    auto wrapped = mx::where(mx::less(t64, mx::array(int64_t{0}), st), mx::add(t64, mx::array(c), st), t64, st);
    auto clamped = mx::astype(mx::clip(wrapped, mx::array(int64_t{0}), mx::array(c - 1), st), mx::int32, st);
    put(out, mx::fast::cross_entropy(x, clamped, st));
  })
}
}
