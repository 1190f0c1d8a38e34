// Arrays across the C ABI: errors, dtype codes, array accessors, evaluation, arrays made
// from host bytes.
#include <cstring>

#include "shim.hpp"

namespace {
thread_local std::string last_error;
thread_local int last_error_kind = emily::kRuntime;
}

namespace emily {

void set_error(const char* msg, ErrorKind kind) {
  last_error = msg ? msg : "";
  last_error_kind = kind;
}

void set_error(const std::exception& e) {
  set_error(e.what(), dynamic_cast<const std::logic_error*>(&e) ? kArgument : kRuntime);
}

// Keep in sync with Emily's dtype codes (src/dtype.rs).
mx::Dtype to_dtype(int32_t code) {
  switch (code) {
    case 0: return mx::bool_;
    case 1: return mx::uint8;
    case 2: return mx::uint16;
    case 3: return mx::uint32;
    case 4: return mx::uint64;
    case 5: return mx::int8;
    case 6: return mx::int16;
    case 7: return mx::int32;
    case 8: return mx::int64;
    case 9: return mx::float16;
    case 10: return mx::bfloat16;
    case 11: return mx::float32;
    case 12: return mx::float64;
    case 13: return mx::complex64;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(code));
}

int32_t from_dtype(mx::Dtype d) {
  switch (d.val()) {
    case mx::Dtype::Val::bool_: return 0;
    case mx::Dtype::Val::uint8: return 1;
    case mx::Dtype::Val::uint16: return 2;
    case mx::Dtype::Val::uint32: return 3;
    case mx::Dtype::Val::uint64: return 4;
    case mx::Dtype::Val::int8: return 5;
    case mx::Dtype::Val::int16: return 6;
    case mx::Dtype::Val::int32: return 7;
    case mx::Dtype::Val::int64: return 8;
    case mx::Dtype::Val::float16: return 9;
    case mx::Dtype::Val::bfloat16: return 10;
    case mx::Dtype::Val::float32: return 11;
    case mx::Dtype::Val::float64: return 12;
    case mx::Dtype::Val::complex64: return 13;
  }
  return -1;
}

}  // namespace emily

using namespace emily;

extern "C" {

const char* emily_last_error(void) { return last_error.c_str(); }
int emily_last_error_kind(void) { return last_error_kind; }

void emily_array_free(emily_array* a) { delete a; }

int emily_array_clone(const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::array(a->a)))
}

int emily_ndim(const emily_array* a) { return static_cast<int>(a->a.ndim()); }

void emily_shape(const emily_array* a, int64_t* out) {
  const auto& s = a->a.shape();
  for (size_t i = 0; i < s.size(); i++) out[i] = s[i];
}

int emily_dtype(const emily_array* a) { return from_dtype(a->a.dtype()); }
size_t emily_nbytes(const emily_array* a) { return a->a.nbytes(); }
size_t emily_size(const emily_array* a) { return a->a.size(); }
int emily_is_available(const emily_array* a) { return a->a.is_available() ? 1 : 0; }

int emily_is_row_contiguous(const emily_array* a) {
  return a->a.flags().row_contiguous ? 1 : 0;
}

const void* emily_data_ptr(const emily_array* a) {
  if (!a->a.is_available() || a->a.data_shared_ptr() == nullptr) return nullptr;
  return a->a.data<void>();
}

uintptr_t emily_buffer_id(const emily_array* a) {
  const auto& d = a->a.data_shared_ptr();
  return d ? reinterpret_cast<uintptr_t>(d.get()) : 0;
}

int emily_is_donatable(const emily_array* a) { return a->a.is_donatable() ? 1 : 0; }

const char* emily_mlx_version(void) {
  static std::string v = mx::version();
  return v.c_str();
}

int emily_array_contiguous(emily_stream s, const emily_array* a, emily_array** out) {
  EMILY_GUARD(put(out, mx::contiguous(a->a, false, stream(s))))
}

int emily_eval(emily_arrays v) { EMILY_GUARD({
  EvalGuard g(stream_table_lock());
  guard_memory(v);
  mx::eval(arrays(v));
}) }
int emily_async_eval(emily_arrays v) { EMILY_GUARD({
  EvalGuard g(stream_table_lock());
  guard_memory(v);
  mx::async_eval(arrays(v));
}) }

int emily_from_bytes(const void* data, size_t nbytes, emily_ints shp, int32_t dtype,
                     emily_array** out) {
  EMILY_GUARD({
    auto dt = to_dtype(dtype);
    auto s = shape(shp);
    size_t n = 1;
    for (auto d : s) {
      if (d < 0) throw std::invalid_argument("negative dimension in shape");
      n *= static_cast<size_t>(d);
    }
    if (n * dt.size() != nbytes)
      throw std::invalid_argument("binary has " + std::to_string(nbytes) + " bytes but shape and dtype need " +
                                  std::to_string(n * dt.size()));
    auto buf = checked_malloc(nbytes, "from_binary");
    if (nbytes) std::memcpy(buf.buffer().raw_ptr(), data, nbytes);
    put(out, mx::array(std::move(buf), std::move(s), dt));
  })
}

}  // extern "C"
