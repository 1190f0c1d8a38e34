// Ops Emily.Backend needs beyond MLX's public op list. Mirrors backend_extra_table! in
// src/ops/backend_extra.rs.
#include <string>

#include "shim.hpp"

using namespace emily;

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

}  // extern "C"
