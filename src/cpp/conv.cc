// Convolutions. The functions mirror conv_table! in src/ops/conv.rs.
// MLX's layout is channels-last: input [N, spatial..., C_in], weight
// [C_out, spatial..., C_in / groups].
#include "shim.hpp"

using namespace emily;

namespace {

// Strides, dilations and groups divide in MLX's shape arithmetic: zero or negative ones
// raise SIGFPE or index out of bounds there, so they are refused here.
int positive(int64_t v, const char* what) {
  int i = to_int(v, what);
  if (i < 1) throw std::invalid_argument(std::string("[conv] ") + what + " must be at least 1, got " + std::to_string(v));
  return i;
}

bool must_be_positive(const char* what) {
  return std::string(what) == "stride" || std::string(what) == "dilation";
}

std::vector<int> positives(emily_ints v, const char* what) {
  std::vector<int> out;
  for (size_t i = 0; i < v.len; i++) out.push_back(positive(v.ptr[i], what));
  return out;
}

std::pair<int, int> pair_of(emily_ints v, const char* what) {
  if (v.len != 2) throw std::invalid_argument(std::string("[conv2d] ") + what + " needs 2 values");
  if (must_be_positive(what)) return {positive(v.ptr[0], what), positive(v.ptr[1], what)};
  return {to_int(v.ptr[0], what), to_int(v.ptr[1], what)};
}

std::tuple<int, int, int> triple_of(emily_ints v, const char* what) {
  if (v.len != 3) throw std::invalid_argument(std::string("[conv3d] ") + what + " needs 3 values");
  if (must_be_positive(what)) return {positive(v.ptr[0], what), positive(v.ptr[1], what), positive(v.ptr[2], what)};
  return {to_int(v.ptr[0], what), to_int(v.ptr[1], what), to_int(v.ptr[2], what)};
}

}  // namespace

extern "C" {

EMILY_API int emily_conv_general(emily_stream s, const emily_array* input,
                                 const emily_array* weight, emily_ints stride,
                                 emily_ints padding_lo, emily_ints padding_hi,
                                 emily_ints kernel_dilation, emily_ints input_dilation,
                                 int64_t groups, bool flip, emily_array** out) {
  EMILY_GUARD(put(out, mx::conv_general(input->a, weight->a, positives(stride, "stride"), ints(padding_lo),
                                        ints(padding_hi), positives(kernel_dilation, "dilation"),
                                        positives(input_dilation, "dilation"), positive(groups, "groups"), flip,
                                        stream(s))))
}

EMILY_API int emily_conv1d(emily_stream s, const emily_array* input, const emily_array* weight,
                           int64_t stride, int64_t padding, int64_t dilation, int64_t groups,
                           emily_array** out) {
  EMILY_GUARD(put(out, mx::conv1d(input->a, weight->a, positive(stride, "stride"),
                                  to_int(padding, "padding"), positive(dilation, "dilation"),
                                  positive(groups, "groups"), stream(s))))
}

EMILY_API int emily_conv2d(emily_stream s, const emily_array* input, const emily_array* weight,
                           emily_ints stride, emily_ints padding, emily_ints dilation,
                           int64_t groups, emily_array** out) {
  EMILY_GUARD(put(out, mx::conv2d(input->a, weight->a, pair_of(stride, "stride"),
                                  pair_of(padding, "padding"), pair_of(dilation, "dilation"),
                                  positive(groups, "groups"), stream(s))))
}

EMILY_API int emily_conv3d(emily_stream s, const emily_array* input, const emily_array* weight,
                           emily_ints stride, emily_ints padding, emily_ints dilation,
                           int64_t groups, emily_array** out) {
  EMILY_GUARD(put(out, mx::conv3d(input->a, weight->a, triple_of(stride, "stride"),
                                  triple_of(padding, "padding"), triple_of(dilation, "dilation"),
                                  positive(groups, "groups"), stream(s))))
}

EMILY_API int emily_conv_transpose1d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, int64_t stride, int64_t padding,
                                     int64_t dilation, int64_t output_padding, int64_t groups,
                                     emily_array** out) {
  EMILY_GUARD(put(out, mx::conv_transpose1d(input->a, weight->a, positive(stride, "stride"),
                                            to_int(padding, "padding"),
                                            positive(dilation, "dilation"),
                                            to_int(output_padding, "output_padding"),
                                            positive(groups, "groups"), stream(s))))
}

EMILY_API int emily_conv_transpose2d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, emily_ints stride,
                                     emily_ints padding, emily_ints dilation,
                                     emily_ints output_padding, int64_t groups,
                                     emily_array** out) {
  EMILY_GUARD(put(out, mx::conv_transpose2d(
                           input->a, weight->a, pair_of(stride, "stride"),
                           pair_of(padding, "padding"), pair_of(dilation, "dilation"),
                           pair_of(output_padding, "output_padding"), positive(groups, "groups"),
                           stream(s))))
}

EMILY_API int emily_conv_transpose3d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, emily_ints stride,
                                     emily_ints padding, emily_ints dilation,
                                     emily_ints output_padding, int64_t groups,
                                     emily_array** out) {
  EMILY_GUARD(put(out, mx::conv_transpose3d(
                           input->a, weight->a, triple_of(stride, "stride"),
                           triple_of(padding, "padding"), triple_of(dilation, "dilation"),
                           triple_of(output_padding, "output_padding"),
                           positive(groups, "groups"), stream(s))))
}
}
