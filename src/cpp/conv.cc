// Convolutions. The functions mirror conv_table! in src/ops/conv.rs.
// MLX's layout is channels-last: input [N, spatial..., C_in], weight
// [C_out, spatial..., C_in / groups].
#include "shim.hpp"

using namespace emily;

namespace {

std::pair<int, int> pair_of(emily_ints v, const char* what) {
  if (v.len != 2) throw std::invalid_argument(std::string("[conv2d] ") + what + " needs 2 values");
  return {static_cast<int>(v.ptr[0]), static_cast<int>(v.ptr[1])};
}

std::tuple<int, int, int> triple_of(emily_ints v, const char* what) {
  if (v.len != 3) throw std::invalid_argument(std::string("[conv3d] ") + what + " needs 3 values");
  return {static_cast<int>(v.ptr[0]), static_cast<int>(v.ptr[1]), static_cast<int>(v.ptr[2])};
}

}  // namespace

extern "C" {

EMILY_API int emily_conv_general(emily_stream s, const emily_array* input,
                                 const emily_array* weight, emily_ints stride,
                                 emily_ints padding_lo, emily_ints padding_hi,
                                 emily_ints kernel_dilation, emily_ints input_dilation,
                                 int64_t groups, bool flip, emily_array** out) {
  EMILY_GUARD(put(out, mx::conv_general(input->a, weight->a, ints(stride), ints(padding_lo),
                                        ints(padding_hi), ints(kernel_dilation),
                                        ints(input_dilation), static_cast<int>(groups), flip,
                                        stream(s))))
}

EMILY_API int emily_conv1d(emily_stream s, const emily_array* input, const emily_array* weight,
                           int64_t stride, int64_t padding, int64_t dilation, int64_t groups,
                           emily_array** out) {
  EMILY_GUARD(put(out, mx::conv1d(input->a, weight->a, static_cast<int>(stride),
                                  static_cast<int>(padding), static_cast<int>(dilation),
                                  static_cast<int>(groups), stream(s))))
}

EMILY_API int emily_conv2d(emily_stream s, const emily_array* input, const emily_array* weight,
                           emily_ints stride, emily_ints padding, emily_ints dilation,
                           int64_t groups, emily_array** out) {
  EMILY_GUARD(put(out, mx::conv2d(input->a, weight->a, pair_of(stride, "stride"),
                                  pair_of(padding, "padding"), pair_of(dilation, "dilation"),
                                  static_cast<int>(groups), stream(s))))
}

EMILY_API int emily_conv3d(emily_stream s, const emily_array* input, const emily_array* weight,
                           emily_ints stride, emily_ints padding, emily_ints dilation,
                           int64_t groups, emily_array** out) {
  EMILY_GUARD(put(out, mx::conv3d(input->a, weight->a, triple_of(stride, "stride"),
                                  triple_of(padding, "padding"), triple_of(dilation, "dilation"),
                                  static_cast<int>(groups), stream(s))))
}

EMILY_API int emily_conv_transpose1d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, int64_t stride, int64_t padding,
                                     int64_t dilation, int64_t output_padding, int64_t groups,
                                     emily_array** out) {
  EMILY_GUARD(put(out, mx::conv_transpose1d(input->a, weight->a, static_cast<int>(stride),
                                            static_cast<int>(padding),
                                            static_cast<int>(dilation),
                                            static_cast<int>(output_padding),
                                            static_cast<int>(groups), stream(s))))
}

EMILY_API int emily_conv_transpose2d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, emily_ints stride,
                                     emily_ints padding, emily_ints dilation,
                                     emily_ints output_padding, int64_t groups,
                                     emily_array** out) {
  EMILY_GUARD(put(out, mx::conv_transpose2d(
                           input->a, weight->a, pair_of(stride, "stride"),
                           pair_of(padding, "padding"), pair_of(dilation, "dilation"),
                           pair_of(output_padding, "output_padding"), static_cast<int>(groups),
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
                           static_cast<int>(groups), stream(s))))
}
}
