// MLX's memory figures and limits, and the C library's malloc thresholds.
#include <climits>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "shim.hpp"

extern "C" {

size_t emily_active_memory(void) { return mx::get_active_memory(); }
size_t emily_peak_memory(void) { return mx::get_peak_memory(); }
size_t emily_cache_memory(void) { return mx::get_cache_memory(); }
void emily_reset_peak_memory(void) { mx::reset_peak_memory(); }
void emily_clear_cache(void) { mx::clear_cache(); }
size_t emily_set_memory_limit(size_t limit) { return mx::set_memory_limit(limit); }
size_t emily_set_cache_limit(size_t limit) { return mx::set_cache_limit(limit); }
size_t emily_get_memory_limit(void) { return mx::get_memory_limit(); }

// glibc's malloc serves a request of at least M_MMAP_THRESHOLD bytes with its own mmap and
// gives it back with munmap on free. Left alone it raises that threshold (up to 32 MiB, with
// the trim threshold at twice it) as such blocks are freed, so that a block allocated and
// freed over and over is reused from the heap. The BEAM sets the trim threshold and top pad
// at start (its +MYtt / +MYtp), and any mallopt call fixes the thresholds for good: in a BEAM
// every block of 128 KiB or more is a fresh mapping. OpenBLAS allocates ~0.5 MiB of
// per-call state in each threaded level-3 call, so every multithreaded sgemm then paid an
// mmap, page faults and an munmap (with a TLB shootdown on the CPU running OpenBLAS's other
// thread): 25-30 us per call, a sixth of a 256x256 matmul. Sets the trim threshold at twice
// the mmap threshold (glibc's own rule) and the top pad back to glibc's default. Returns 1
// when glibc took all three.
#if defined(__GLIBC__)
// glibc's default top pad (mallopt(3)); the BEAM sets 0. With no pad, a thread arena whose
// newest heap holds only one freed block unmaps that heap at once (heap_trim), and the next
// allocation maps a new one: OpenBLAS's per-call block can fall into that cycle for good.
constexpr int kGlibcTopPad = 128 * 1024;
#endif

int emily_malloc_tune(size_t mmap_threshold) {
#if defined(__GLIBC__)
  if (mmap_threshold == 0 || mmap_threshold > (size_t)INT_MAX / 2) return 0;
  int m = static_cast<int>(mmap_threshold);
  return mallopt(M_MMAP_THRESHOLD, m) == 1 && mallopt(M_TRIM_THRESHOLD, 2 * m) == 1 &&
                 mallopt(M_TOP_PAD, kGlibcTopPad) == 1
             ? 1
             : 0;
#else
  (void)mmap_threshold;
  return 0;
#endif
}

void emily_malloc_trim(void) {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // extern "C"
