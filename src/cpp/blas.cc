// The BLAS library MLX's CPU kernels call: which one, and for an OpenBLAS built for several
// CPUs (DYNAMIC_ARCH), which kernel family it chose when it loaded (from the CPU, or from
// OPENBLAS_CORETYPE). `mix emily.doctor` prints it: f32 matmul at 256 ran 143 us with the
// AVX2 (Haswell) kernels and 80 us with the AVX-512 ones on the same Zen 5.
#include <dlfcn.h>

#include <cstring>

#include "emily.h"

extern "C" void cblas_sgemm(int, int, int, int, int, int, float, const float*, int, const float*,
                            int, float, float*, int);

namespace {

using CoreNameFn = char* (*)();

// gotoblas_corename of the DYNAMIC_ARCH OpenBLAS that serves cblas_sgemm here; null when
// something else serves it.
CoreNameFn openblas_corename() {
  Dl_info info;
  if (!dladdr(reinterpret_cast<void*>(&cblas_sgemm), &info) || !info.dli_fname) return nullptr;
  void* h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  if (!h) return nullptr;
  auto f = reinterpret_cast<CoreNameFn>(dlsym(h, "gotoblas_corename"));
  dlclose(h);  // RTLD_NOLOAD: only drops the reference just taken
  return f;
}

}  // namespace

extern "C" {

// Writes OpenBLAS's kernel family ("Haswell", "SkylakeX", ...) into out (NUL-terminated);
// 0 when the BLAS in use is not a DYNAMIC_ARCH OpenBLAS.
int emily_blas_core(char* out, size_t cap) {
  CoreNameFn corename = openblas_corename();
  if (cap == 0 || !corename) return 0;
  const char* name = corename();
  if (!name) return 0;
  std::strncpy(out, name, cap - 1);
  out[cap - 1] = '\0';
  return 1;
}

}  // extern "C"
