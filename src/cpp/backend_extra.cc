// Ops Emily.Backend needs beyond MLX's public op list. Mirrors backend_extra_table! in
// src/ops/backend_extra.rs.
#include <cmath>
#include <string>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/primitives.h"
#include "shim.hpp"

using namespace emily;

namespace {

// Nx's erf_inv (Giles' single-precision approximation, as the `complex` package computes
// it in double precision).
double erf_inv(double z) {
  if (z == 1) return INFINITY;
  if (z == -1) return -INFINITY;
  if (z == 0) return 0;
  double w = -std::log((1 - z) * (1 + z));
  double p;
  if (w < 5) {
    w = w - 2.5;
    p = 2.81022636e-08;
    p = p * w + 3.43273939e-07;
    p = p * w + -3.5233877e-06;
    p = p * w + -4.39150654e-06;
    p = p * w + 0.00021858087;
    p = p * w + -0.00125372503;
    p = p * w + -0.00417768164;
    p = p * w + 0.246640727;
    p = p * w + 1.50140941;
  } else {
    w = std::sqrt(w) - 3;
    p = -0.000200214257;
    p = p * w + 0.000100950558;
    p = p * w + 0.00134934322;
    p = p * w + -0.00367342844;
    p = p * w + 0.00573950773;
    p = p * w + -0.0076224613;
    p = p * w + 0.00943887047;
    p = p * w + 1.00167406;
    p = p * w + 2.83297682;
  }
  return p * z;
}

double cbrt_nx(double x) { return x >= 0 ? std::pow(x, 1.0 / 3) : -std::pow(-x, 1.0 / 3); }

// Codes of precise_unary (keep in sync with Emily.Backend's table).
double apply_op(int64_t op, double x) {
  switch (op) {
    case 0: return std::exp(x);
    case 1: return std::expm1(x);
    case 2: return std::log(x);
    case 3: return std::log1p(x);
    case 4: return 1.0 / (1.0 + std::exp(-x));
    case 5: return std::cos(x);
    case 6: return std::sin(x);
    case 7: return std::tan(x);
    case 8: return std::cosh(x);
    case 9: return std::sinh(x);
    case 10: return std::tanh(x);
    case 11: return std::acos(x);
    case 12: return std::asin(x);
    case 13: return std::atan(x);
    case 14: return std::acosh(x);
    case 15: return std::asinh(x);
    case 16: return std::atanh(x);
    case 17: return std::sqrt(x);
    case 18: return 1.0 / std::sqrt(x);
    case 19: return cbrt_nx(x);
    case 20: return std::erf(x);
    case 21: return std::erfc(x);
    case 22: return erf_inv(x);
  }
  return NAN;
}

constexpr int64_t kPreciseOps = 23;

// Element-wise float64 math with the C library (the functions Erlang's :math uses), for
// the ops where MLX's float64 kernels compute in single precision. CPU only.
class PreciseUnary : public mx::UnaryPrimitive {
 public:
  PreciseUnary(mx::Stream s, int64_t op) : mx::UnaryPrimitive(s), op_(op) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(in);
    enc.set_output_array(out);
    enc.dispatch([src = in.data<double>(), dst = out.data<double>(), n = in.size(), op = op_]() {
      for (size_t i = 0; i < n; i++) dst[i] = apply_op(op, src[i]);
    });
  }

  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("[precise_unary] float64 runs on the CPU only");
  }

  const char* name() const override { return "EmilyPreciseUnary"; }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const PreciseUnary*>(&other);
    return o != nullptr && o->op_ == op_;
  }

 private:
  int64_t op_;
};

}  // namespace

extern "C" {

EMILY_API int emily_as_strided(emily_stream s, const emily_array* a, emily_ints shp, emily_ints strides,
                               int64_t offset, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    auto sh = shape(shp);
    if (strides.len != sh.size())
      throw std::invalid_argument("[as_strided] needs one stride per dimension (" + std::to_string(sh.size()) +
                                  "), got " + std::to_string(strides.len));
    if (offset < 0) throw std::invalid_argument("[as_strided] offset must be non-negative");
    mx::Strides str(strides.ptr, strides.ptr + strides.len);
    bool empty = false;
    int64_t last = offset;
    for (size_t i = 0; i < sh.size(); i++) {
      if (sh[i] < 0) throw std::invalid_argument("[as_strided] negative dimension");
      if (str[i] < 0) throw std::invalid_argument("[as_strided] strides must be non-negative");
      if (sh[i] == 0) empty = true;
      else last += static_cast<int64_t>(sh[i] - 1) * str[i];
    }
    int64_t size = static_cast<int64_t>(a->a.size());
    if (!empty && last >= size)
      throw std::invalid_argument("[as_strided] the view reaches element " + std::to_string(last) +
                                  " of an array of " + std::to_string(size));
    auto c = mx::contiguous(a->a, false, st);
    put(out, mx::as_strided(c, std::move(sh), std::move(str), static_cast<size_t>(offset), st));
  })
}

EMILY_API int emily_precise_unary(emily_stream s, const emily_array* a, int64_t op, emily_array** out) {
  EMILY_GUARD({
    if (op < 0 || op >= kPreciseOps) throw std::invalid_argument("[precise_unary] unknown op code " + std::to_string(op));
    if (a->a.dtype() != mx::float64) throw std::invalid_argument("[precise_unary] needs a float64 array");
    auto st = stream(s);
    if (st.device != mx::Device::cpu) throw std::invalid_argument("[precise_unary] float64 runs on the CPU only");
    auto c = mx::contiguous(a->a, false, st);
    auto shp = c.shape();
    put(out, mx::array(std::move(shp), mx::float64, std::make_shared<PreciseUnary>(st, op), {c}));
  })
}

}  // extern "C"
