// Float64 math with the C library, declared in src/ops/precise.ops.
#include <cmath>
#include <cstdint>
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

double apply_op(emily_precise_op op, double x) {
  switch (op) {
    case EMILY_PRECISE_OP_EXP: return std::exp(x);
    case EMILY_PRECISE_OP_EXPM1: return std::expm1(x);
    case EMILY_PRECISE_OP_LOG: return std::log(x);
    case EMILY_PRECISE_OP_LOG1P: return std::log1p(x);
    case EMILY_PRECISE_OP_SIGMOID: return 1.0 / (1.0 + std::exp(-x));
    case EMILY_PRECISE_OP_COS: return std::cos(x);
    case EMILY_PRECISE_OP_SIN: return std::sin(x);
    case EMILY_PRECISE_OP_TAN: return std::tan(x);
    case EMILY_PRECISE_OP_COSH: return std::cosh(x);
    case EMILY_PRECISE_OP_SINH: return std::sinh(x);
    case EMILY_PRECISE_OP_TANH: return std::tanh(x);
    case EMILY_PRECISE_OP_ACOS: return std::acos(x);
    case EMILY_PRECISE_OP_ASIN: return std::asin(x);
    case EMILY_PRECISE_OP_ATAN: return std::atan(x);
    case EMILY_PRECISE_OP_ACOSH: return std::acosh(x);
    case EMILY_PRECISE_OP_ASINH: return std::asinh(x);
    case EMILY_PRECISE_OP_ATANH: return std::atanh(x);
    case EMILY_PRECISE_OP_SQRT: return std::sqrt(x);
    case EMILY_PRECISE_OP_RSQRT: return 1.0 / std::sqrt(x);
    case EMILY_PRECISE_OP_CBRT: return cbrt_nx(x);
    case EMILY_PRECISE_OP_ERF: return std::erf(x);
    case EMILY_PRECISE_OP_ERFC: return std::erfc(x);
    case EMILY_PRECISE_OP_ERF_INV: return erf_inv(x);
  }
  return NAN;
}

// Element-wise float64 math with the C library (the functions Erlang's :math uses), for
// the ops where MLX's float64 kernels compute in single precision. CPU only.
class PreciseUnary : public mx::UnaryPrimitive {
 public:
  PreciseUnary(mx::Stream s, emily_precise_op op) : mx::UnaryPrimitive(s), op_(op) {}

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
  emily_precise_op op_;
};

}  // namespace

extern "C" {

EMILY_API int emily_precise_unary(emily_stream s, const emily_array* a, emily_precise_op op, emily_array** out) {
  EMILY_GUARD({
    if (a->a.dtype() != mx::float64) throw std::invalid_argument("[precise_unary] needs a float64 array");
    auto st = stream(s);
    if (st.device != mx::Device::cpu) throw std::invalid_argument("[precise_unary] float64 runs on the CPU only");
    auto c = mx::contiguous(a->a, false, st);
    auto shp = c.shape();
    put(out, mx::array(std::move(shp), mx::float64, std::make_shared<PreciseUnary>(st, op), {c}));
  })
}

}  // extern "C"
