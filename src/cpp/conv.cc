// Convolutions, declared in src/ops/conv.ops.
// MLX's layout is channels-last: input [N, spatial..., C_in], weight
// [C_out, spatial..., C_in / groups].
#include <cstdlib>

#include <limits>

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

// MLX 0.32.4's CUDA convolution caches cuDNN plans under a key that leaves out the input
// dilation: two convolutions differing only in it (a transposed convolution with stride 1,
// then stride 2, on inputs of the same shapes and alignment) reuse the first plan and
// compute the wrong result. On a GPU stream Emily therefore never asks MLX for input
// dilation: it dilates the input itself (zeros, with the input written at strided
// positions) and convolves that with input_dilation 1.
bool explicit_dilation(mx::Stream s) { return s.device == mx::Device::gpu; }

mx::array conv_dilated(const mx::array& in, const mx::array& w, const std::vector<int>& stride,
                       const std::vector<int>& lo, const std::vector<int>& hi,
                       const std::vector<int>& kdil, const std::vector<int>& idil, int groups,
                       bool flip, mx::Stream s) {
  // MLX checks the arguments (and gives its own messages) when it builds the node.
  auto reference = mx::conv_general(in, w, stride, lo, hi, kdil, idil, groups, flip, s);
  const int n = static_cast<int>(in.ndim()) - 2;
  bool any = false;
  for (int d : idil) any |= d != 1;
  if (!any || !explicit_dilation(s)) return reference;
  std::vector<int> dil(n, 1);
  for (int i = 0; i < n; i++) dil[i] = idil.size() == 1 ? idil[0] : idil[i];
  mx::Shape shape = in.shape();
  mx::Shape strides(in.ndim(), 1);
  for (int i = 0; i < n; i++) {
    int len = in.shape(1 + i);
    shape[1 + i] = len == 0 ? 0 : (len - 1) * dil[i] + 1;
    strides[1 + i] = dil[i];
  }
  auto zeros = mx::zeros(shape, in.dtype(), s);
  auto x = mx::slice_update(zeros, in, mx::Shape(in.ndim(), 0), shape, strides, s);
  auto out = mx::conv_general(x, w, stride, lo, hi, kdil, std::vector<int>(n, 1), groups, flip, s);
  if (out.shape() != reference.shape())
    throw std::runtime_error("[conv] explicit input dilation changed the output shape");
  return out;
}

// A transposed convolution as MLX defines it: a convolution with a flipped kernel over the
// input dilated by `stride`, padded by dilation * (k - 1) - padding below and that plus
// output_padding above.
mx::array conv_transpose(const mx::array& in, const mx::array& w, const std::vector<int>& stride,
                         const std::vector<int>& padding, const std::vector<int>& dilation,
                         const std::vector<int>& output_padding, int groups, mx::Stream s,
                         mx::array reference) {
  if (!explicit_dilation(s)) return reference;
  const int n = static_cast<int>(stride.size());
  if (static_cast<int>(w.ndim()) != n + 2) return reference;
  std::vector<int> lo(n), hi(n);
  for (int i = 0; i < n; i++) {
    int span = dilation[i] * (w.shape(1 + i) - 1);
    lo[i] = span - padding[i];
    hi[i] = span - padding[i] + output_padding[i];
  }
  auto out = conv_dilated(in, w, std::vector<int>(n, 1), lo, hi, dilation, stride, groups, true, s);
  if (out.shape() != reference.shape()) return reference;
  return out;
}

std::vector<int> vec(std::pair<int, int> p) { return {p.first, p.second}; }
std::vector<int> vec(std::tuple<int, int, int> t) {
  return {std::get<0>(t), std::get<1>(t), std::get<2>(t)};
}

// conv_transpose2d/3d: the arguments read by `unpack` (pair_of or triple_of), MLX's node
// from `mlx_op` (its checks and messages), then conv_transpose's form of it.
template <class Unpack, class MlxOp>
mx::array conv_transpose_nd(Unpack unpack, MlxOp mlx_op, const mx::array& in, const mx::array& w,
                            emily_ints stride, emily_ints padding, emily_ints dilation,
                            emily_ints output_padding, int64_t groups, mx::Stream s) {
  auto st = unpack(stride, "stride");
  auto pa = unpack(padding, "padding");
  auto di = unpack(dilation, "dilation");
  auto op = unpack(output_padding, "output_padding");
  int g = positive(groups, "groups");
  auto ref = mlx_op(in, w, st, pa, di, op, g, s);
  return conv_transpose(in, w, vec(st), vec(pa), vec(di), vec(op), g, s, ref);
}

// conv_general's lists: empty (the default), one value for every spatial axis, or one per
// spatial axis (MLX indexes its per-axis lists by the input's spatial axes whatever their
// length). Values within int32 and at least `min`.
constexpr int64_t kAny = std::numeric_limits<int>::min();

std::vector<int> general_list(emily_ints v, const mx::array& input, const char* what, int64_t min) {
  size_t spatial = input.ndim() >= 2 ? input.ndim() - 2 : 0;
  if (v.len > 1 && v.len != spatial)
    throw std::invalid_argument(std::string("[conv_general] ") + what + " needs 0, 1 or " +
                                std::to_string(spatial) + " values (one per spatial axis), got " +
                                std::to_string(v.len));
  std::vector<int> out;
  for (size_t i = 0; i < v.len; i++) {
    int x = to_int(v.ptr[i], what);
    if (x < min)
      throw std::invalid_argument(std::string("[conv_general] ") + what + " must be at least " +
                                  std::to_string(min) + ", got " + std::to_string(v.ptr[i]));
    out.push_back(x);
  }
  return out;
}

}  // namespace

extern "C" {

EMILY_API int emily_conv_general(emily_stream s, const emily_array* input,
                                 const emily_array* weight, emily_ints stride,
                                 emily_ints padding_lo, emily_ints padding_hi,
                                 emily_ints kernel_dilation, emily_ints input_dilation,
                                 int64_t groups, bool flip, emily_array** out) {
  EMILY_GUARD(put(out, conv_dilated(input->a, weight->a, general_list(stride, input->a, "stride", 1),
                                    general_list(padding_lo, input->a, "padding_lo", kAny),
                                    general_list(padding_hi, input->a, "padding_hi", kAny),
                                    general_list(kernel_dilation, input->a, "kernel_dilation", 1),
                                    general_list(input_dilation, input->a, "input_dilation", 1),
                                    positive(groups, "groups"), flip, stream(s))))
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
  EMILY_GUARD({
    auto ref = mx::conv_transpose1d(input->a, weight->a, positive(stride, "stride"),
                                    to_int(padding, "padding"), positive(dilation, "dilation"),
                                    to_int(output_padding, "output_padding"), positive(groups, "groups"),
                                    stream(s));
    auto i = [](int64_t v) { return std::vector<int>{static_cast<int>(v)}; };
    put(out, conv_transpose(input->a, weight->a, i(stride), i(padding), i(dilation),
                            i(output_padding), positive(groups, "groups"), stream(s), ref));
  })
}

EMILY_API int emily_conv_transpose2d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, emily_ints stride,
                                     emily_ints padding, emily_ints dilation,
                                     emily_ints output_padding, int64_t groups,
                                     emily_array** out) {
  EMILY_GUARD(put(out, conv_transpose_nd(
                           pair_of, [](auto&&... a) { return mx::conv_transpose2d(a...); },
                           input->a, weight->a, stride, padding, dilation, output_padding,
                           groups, stream(s))))
}

EMILY_API int emily_conv_transpose3d(emily_stream s, const emily_array* input,
                                     const emily_array* weight, emily_ints stride,
                                     emily_ints padding, emily_ints dilation,
                                     emily_ints output_padding, int64_t groups,
                                     emily_array** out) {
  EMILY_GUARD(put(out, conv_transpose_nd(
                           triple_of, [](auto&&... a) { return mx::conv_transpose3d(a...); },
                           input->a, weight->a, stride, padding, dilation, output_padding,
                           groups, stream(s))))
}
}
