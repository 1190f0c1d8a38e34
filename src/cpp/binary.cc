// Elementwise binary ops with broadcasting:
// int emily_<op>(emily_stream s, const emily_array* a, const emily_array* b, emily_array** out).
// Declared in src/ops/binary.ops.
#include "cpu_kernels.hpp"
#include "shim.hpp"

#define EMILY_BINARY_OPS(X)                                                                 \
  X(add) X(subtract) X(multiply) X(divide) X(maximum)                                   \
  X(minimum) X(arctan2) X(logaddexp) X(equal) X(not_equal) X(less) X(less_equal)          \
  X(greater) X(greater_equal) X(logical_and) X(logical_or) X(bitwise_and) X(bitwise_or)    \
  X(bitwise_xor) X(left_shift) X(right_shift)

using namespace emily;

extern "C" {
#define X(name)                                                                         \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, const emily_array* b, \
                             emily_array** out) {                                       \
    EMILY_GUARD(put(out, mx::name(a->a, b->a, stream(s))))                              \
  }
EMILY_BINARY_OPS(X)
#undef X

// Emily's CPU kernel for float32/float16/bfloat16 on a CPU stream (cpu_kernels.cc), MLX's
// primitive elsewhere.
EMILY_API int emily_power(emily_stream s, const emily_array* a, const emily_array* b, emily_array** out) {
  EMILY_GUARD({
    auto st = stream(s);
    auto fast = kernels::binary(kernels::BinaryOp::pow, a->a, b->a, st);
    put(out, fast ? std::move(*fast) : mx::power(a->a, b->a, st));
  })
}
}

// Integer floor_divide and remainder never reach the CPU's divide instruction with a
// divisor that traps (x / 0, and MIN / -1 for signed types: SIGFPE would kill the VM).
// Defined results instead: x floor_divide 0 = 0, x remainder 0 = x; MIN floor_divide -1
// wraps to MIN (as negation does), x remainder -1 = 0. Floats are MLX's as they are.
namespace {
mx::array int_division(const mx::array& a, const mx::array& b, bool rem, mx::Stream s) {
  auto t = mx::promote_types(a.dtype(), b.dtype());
  if (!mx::issubdtype(t, mx::integer)) {
    return rem ? mx::remainder(a, b, s) : mx::floor_divide(a, b, s);
  }
  auto aa = mx::astype(a, t, s);
  auto bb = mx::astype(b, t, s);
  auto zero = mx::equal(bb, mx::array(0, t), s);
  auto bad = zero;
  bool is_signed = mx::issubdtype(t, mx::signedinteger);
  mx::array minus_one = zero;
  if (is_signed) {
    minus_one = mx::equal(bb, mx::array(-1, t), s);
    bad = mx::logical_or(zero, minus_one, s);
  }
  auto safe = mx::where(bad, mx::array(1, t), bb, s);
  auto r = rem ? mx::remainder(aa, safe, s) : mx::floor_divide(aa, safe, s);
  if (is_signed) {
    r = mx::where(minus_one, rem ? mx::zeros_like(aa, s) : mx::negative(aa, s), r, s);
  }
  return mx::where(zero, rem ? aa : mx::zeros_like(aa, s), r, s);
}
}  // namespace

extern "C" {
EMILY_API int emily_floor_divide(emily_stream s, const emily_array* a, const emily_array* b,
                                 emily_array** out) {
  EMILY_GUARD(put(out, int_division(a->a, b->a, false, stream(s))))
}

EMILY_API int emily_remainder(emily_stream s, const emily_array* a, const emily_array* b,
                              emily_array** out) {
  EMILY_GUARD(put(out, int_division(a->a, b->a, true, stream(s))))
}
}
