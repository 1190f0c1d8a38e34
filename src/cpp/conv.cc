// Convolutions. The functions mirror conv_table! in src/ops/conv.rs.
// MLX's layout is channels-last: input [N, spatial..., C_in], weight
// [C_out, spatial..., C_in / groups].
#include "shim.hpp"

using namespace emily;

namespace {

// Checked arguments (MLX divides by groups before checking it, and indexes its per-axis lists
// by the input's spatial axes whatever their length): strides and dilations >= 1, groups
// >= 1, every value within int32. Negative padding crops (MLX's own semantics).
constexpr int64_t kAny = std::numeric_limits<int>::min();

int checked(int64_t v, const char* op, const char* what, int64_t min) {
  int i = to_int(v, what);
  if (i < min)
    throw std::invalid_argument(std::string("[") + op + "] " + what + " must be at least " +
                                std::to_string(min) + ", got " + std::to_string(v));
  return i;
}

int groups_of(int64_t g, const char* op) { return checked(g, op, "groups", 1); }

std::vector<int> list_of(emily_ints v, size_t n, const char* op, const char* what, int64_t min) {
  if (v.len != n)
    throw std::invalid_argument(std::string("[") + op + "] " + what + " needs " + std::to_string(n) +
                                " values, got " + std::to_string(v.len));
  std::vector<int> out;
  for (size_t i = 0; i < v.len; i++) out.push_back(checked(v.ptr[i], op, what, min));
  return out;
}

std::pair<int, int> pair_of(emily_ints v, const char* op, const char* what, int64_t min) {
  auto l = list_of(v, 2, op, what, min);
  return {l[0], l[1]};
}

std::tuple<int, int, int> triple_of(emily_ints v, const char* op, const char* what, int64_t min) {
  auto l = list_of(v, 3, op, what, min);
  return {l[0], l[1], l[2]};
}

// conv_general's lists: empty (the default), one value for every spatial axis, or one per
// spatial axis.
std::vector<int> general_list(emily_ints v, const mx::array& input, const char* what, int64_t min) {
  size_t spatial = input.ndim() >= 2 ? input.ndim() - 2 : 0;
  if (v.len > 1 && v.len != spatial)
    throw std::invalid_argument(std::string("[conv_general] ") + what + " needs 0, 1 or " +
                                std::to_string(spatial) + " values (one per spatial axis), got " +
                                std::to_string(v.len));
  return list_of(v, v.len, "conv_general", what, min);
}

}  // namespace

extern "C" {

EMILY_API int emily_conv_general(emily_stream s, const emily_array* input,
                                 const emily_array* weight, emily_ints stride,
                                 emily_ints padding_lo, emily_ints padding_hi,
                                 emily_ints kernel_dilation, emily_ints input_dilation,
                                 int64_t groups, bool flip, emily_array** out) {
  EMILY_GUARD({
    const auto& in = input->a;
    put(out, mx::conv_general(in, weight->a, general_list(stride, in, "stride", 1),
                              general_list(padding_lo, in, "padding_lo", kAny),
                              general_list(padding_hi, in, "padding_hi", kAny),
                              general_list(kernel_dilation, in, "kernel_dilation", 1),
                              general_list(input_dilation, in, "input_dilation", 1),
                              groups_of(groups, "conv_general"), flip, stream(s)));
  })
}

EMILY_API int emily_conv1d(emily_stream s, const emily_array* input, const emily_array* weight,
                           int64_t stride, int64_t padding, int64_t dilation, int64_t groups,
                           emily_array** out) {
  EMILY_GUARD(put(out, mx::conv1d(input->a, weight->a, checked(stride, "conv1d", "stride", 1),
                                  checked(padding, "conv1d", "padding", kAny),
                                  checked(dilation, "conv1d", "dilation", 1),
                                  groups_of(groups, "conv1d"), stream(s))))
}

EMILY_API int emily_conv2d(emily_stream s, const emily_array* input, const emily_array* weight,
                           emily_ints stride, emily_ints padding, emily_ints dilation,
                           int64_t groups, emily_array** out) {
  EMILY_GUARD(put(out, mx::conv2d(input->a, weight->a, pair_of(stride, "conv2d", "stride", 1),
                                  pair_of(padding, "conv2d", "padding", kAny),
                                  pair_of(dilation, "conv2d", "dilation", 1),
                                  groups_of(groups, "conv2d"), stream(s))))
}

EMILY_API int emily_conv3d(emily_stream s, const emily_array* input, const emily_array* weight,
                           emily_ints stride, emily_ints padding, emily_ints dilation,
                           int64_t groups, emily_array** out) {
  EMILY_GUARD(put(out, mx::conv3d(input->a, weight->a, triple_of(stride, "conv3d", "stride", 1),
                                  triple_of(padding, "conv3d", "padding", kAny),
                                  triple_of(dilation, "conv3d", "dilation", 1),
                                  groups_of(groups, "conv3d"), stream(s))))
}

EMILY_API int emily_conv_transpose1d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, int64_t stride, int64_t padding,
                                     int64_t dilation, int64_t output_padding, int64_t groups,
                                     emily_array** out) {
  const char* op = "conv_transpose1d";
  EMILY_GUARD(put(out, mx::conv_transpose1d(input->a, weight->a, checked(stride, op, "stride", 1),
                                            checked(padding, op, "padding", kAny),
                                            checked(dilation, op, "dilation", 1),
                                            checked(output_padding, op, "output_padding", kAny),
                                            groups_of(groups, op), stream(s))))
}

EMILY_API int emily_conv_transpose2d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, emily_ints stride,
                                     emily_ints padding, emily_ints dilation,
                                     emily_ints output_padding, int64_t groups,
                                     emily_array** out) {
  const char* op = "conv_transpose2d";
  EMILY_GUARD(put(out, mx::conv_transpose2d(input->a, weight->a, pair_of(stride, op, "stride", 1),
                                            pair_of(padding, op, "padding", kAny),
                                            pair_of(dilation, op, "dilation", 1),
                                            pair_of(output_padding, op, "output_padding", kAny),
                                            groups_of(groups, op), stream(s))))
}

EMILY_API int emily_conv_transpose3d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, emily_ints stride,
                                     emily_ints padding, emily_ints dilation,
                                     emily_ints output_padding, int64_t groups,
                                     emily_array** out) {
  const char* op = "conv_transpose3d";
  EMILY_GUARD(put(out, mx::conv_transpose3d(input->a, weight->a, triple_of(stride, op, "stride", 1),
                                            triple_of(padding, op, "padding", kAny),
                                            triple_of(dilation, op, "dilation", 1),
                                            triple_of(output_padding, op, "output_padding", kAny),
                                            groups_of(groups, op), stream(s))))
}
}
