// The BLAS library MLX's CPU kernels call: which one, and for an OpenBLAS built for several
// CPUs (DYNAMIC_ARCH), which kernel family it chose when it loaded (from the CPU, or from
// OPENBLAS_CORETYPE), and its thread count. `mix emily.doctor` prints both: f32 matmul at
// 256 ran 143 us with the AVX2 (Haswell) kernels and 80 us with the AVX-512 ones on the same
// Zen 5. The thread count is fitted when the NIF library loads (threads.cc says why).
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "cblas.hpp"
#include "emily.h"
#include "threads.hpp"

namespace {

// A symbol of the library that serves cblas_sgemm here; null when it has no such symbol
// (not OpenBLAS, or an OpenBLAS without it).
template <class F>
F blas_symbol(const char* name) {
  Dl_info info;
  if (!dladdr(reinterpret_cast<void*>(&cblas_sgemm), &info) || !info.dli_fname) return nullptr;
  void* h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  if (!h) return nullptr;
  auto f = reinterpret_cast<F>(dlsym(h, name));
  dlclose(h);  // RTLD_NOLOAD: only drops the reference just taken
  return f;
}

using CoreNameFn = char* (*)();
using GetThreadsFn = int (*)();
using SetThreadsFn = void (*)(int);

// The thread cap OpenBLAS reads from the environment at load: the first positive one of
// these, as it reads them (0: none).
int env_thread_cap() {
  for (const char* name : {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"}) {
    const char* v = std::getenv(name);
    int n = v ? std::atoi(v) : 0;
    if (n > 0) return n;
  }
  return 0;
}

}  // namespace

extern "C" {

// Writes OpenBLAS's kernel family ("Haswell", "SkylakeX", ...) into out (NUL-terminated);
// 0 when the BLAS in use is not a DYNAMIC_ARCH OpenBLAS.
int emily_blas_core(char* out, size_t cap) {
  auto corename = blas_symbol<CoreNameFn>("gotoblas_corename");
  if (cap == 0 || !corename) return 0;
  const char* name = corename();
  if (!name) return 0;
  std::strncpy(out, name, cap - 1);
  out[cap - 1] = '\0';
  return 1;
}

int emily_blas_threads(void) {
  auto get = blas_symbol<GetThreadsFn>("openblas_get_num_threads");
  return get ? get() : 0;
}

int emily_blas_fit_threads(void) {
  auto get = blas_symbol<GetThreadsFn>("openblas_get_num_threads");
  auto set = blas_symbol<SetThreadsFn>("openblas_set_num_threads");
  if (!get || !set) return 0;
  // OpenBLAS sized its pool from the CPU set of the thread that loaded it. Threads it starts
  // now inherit the process's set (OpenBLAS itself caps the count at its MAX_CPU_NUMBER).
  emily::ProcessCpus cpus;
  int want = emily::process_cpu_count();
  if (int cap = env_thread_cap(); cap > 0 && (want == 0 || cap < want)) want = cap;
  if (want > get()) set(want);
  return get();
}

}  // extern "C"
