// Elementwise binary ops with broadcasting:
// int emily_<op>(emily_stream s, const emily_array* a, const emily_array* b, emily_array** out).
// The list mirrors binary_table! in src/ops/binary.rs.
#include "shim.hpp"

#define EMILY_BINARY_OPS(X)                                                                 \
  X(add) X(subtract) X(multiply) X(divide) X(floor_divide) X(remainder) X(power) X(maximum) \
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
}
