// Sorting, partitioning, top-k, declared in src/ops/sort.ops.
#include "shim.hpp"

using namespace emily;

extern "C" {

EMILY_API int emily_sort(emily_stream s, const emily_array* a, int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, mx::sort(a->a, to_int(axis, "axis"), stream(s))))
}

EMILY_API int emily_argsort(emily_stream s, const emily_array* a, int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, mx::argsort(a->a, to_int(axis, "axis"), stream(s))))
}

EMILY_API int emily_partition(emily_stream s, const emily_array* a, int64_t kth, int64_t axis,
                              emily_array** out) {
  EMILY_GUARD(put(out, mx::partition(a->a, to_int(kth, "kth"), to_int(axis, "axis"), stream(s))))
}

EMILY_API int emily_argpartition(emily_stream s, const emily_array* a, int64_t kth, int64_t axis,
                                 emily_array** out) {
  EMILY_GUARD(put(out, mx::argpartition(a->a, to_int(kth, "kth"), to_int(axis, "axis"), stream(s))))
}

EMILY_API int emily_topk(emily_stream s, const emily_array* a, int64_t k, int64_t axis, emily_array** out) {
  EMILY_GUARD(put(out, mx::topk(a->a, to_int(k, "k"), to_int(axis, "axis"), stream(s))))
}

}  // extern "C"
