// Emily's C ABI over MLX C++. Every function returns 0 on success and non-zero on failure;
// on failure the message is kept in a thread-local buffer read by emily_last_error().
// No C++ exception crosses this boundary.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct emily_array emily_array;

// A stream is plain data: MLX identifies it by index and device.
typedef struct {
  int32_t index;
  int32_t device; // 0 = cpu, 1 = gpu
} emily_stream;

typedef struct {
  const int64_t* ptr;
  size_t len;
} emily_ints;

typedef struct {
  const emily_array* const* ptr;
  size_t len;
} emily_arrays;

// Multi-output ops hand each output to `push(ctx, array)`, in order, once every output has
// been built and size-checked; the callee owns each array it is handed (also when the op
// then fails). Any number of outputs.
typedef struct {
  void* ctx;
  void (*push)(void* ctx, emily_array* a);
} emily_outs;

const char* emily_last_error(void);
// The kind of the last error: 0 = bad arguments (a C++ std::logic_error: invalid_argument,
// out_of_range, ...), 1 = a failure while running (std::runtime_error or anything else).
int emily_last_error_kind(void);

// ---- lifecycle and metadata (arrays.cc) ----
void emily_array_free(emily_array* a);
int emily_array_clone(const emily_array* a, emily_array** out);
int emily_ndim(const emily_array* a);
void emily_shape(const emily_array* a, int64_t* out);
int emily_dtype(const emily_array* a);
size_t emily_nbytes(const emily_array* a);
size_t emily_size(const emily_array* a);
int emily_is_available(const emily_array* a);
int emily_is_row_contiguous(const emily_array* a);
// Data pointer of an evaluated array (offset applied); NULL when not evaluated.
const void* emily_data_ptr(const emily_array* a);
// Identity of the underlying buffer (the allocation), for the alias ledger.
uintptr_t emily_buffer_id(const emily_array* a);
int emily_is_donatable(const emily_array* a);

// ---- devices and streams (streams.cc) ----
int emily_device_available(int32_t device);
// MLX's device_info as "key\tvalue\n" lines (numbers as "#<digits>"); NULL on error.
const char* emily_device_info(int32_t device);
// Creates a stream on `device` and makes it the calling thread's default. A GPU stream is
// bound to that thread; a CPU stream may be used by others when its users are serialised.
int emily_stream_new(int32_t device, emily_stream* out);
// Marks the calling thread as standing for the worker owning `streams` (n <= 2; n = 0:
// for none). Programs and evaluations on such a thread refuse nodes of other streams.
// `direct` (CPU workers only): the thread runs the MLX kernels of those streams itself
// (direct.cc); when a stream passes from MLX's stream thread to direct execution, work
// still queued for that thread is waited for first. Direct execution stays off when asked
// for none, or when this process's libmlx calls do not reach Emily.
void emily_own_streams(const int32_t* streams, size_t n, int direct);
// Whether direct execution works in this process: 1 yes, 0 no, -1 not known yet (no CPU
// worker has asked for it).
int emily_direct_available(void);
// Entry points for MLX's Scheduler::enqueue, ::signal_event, ::wait_event and ::check_error
// (src/direct.rs exports them under MLX's names): a Stream in two words, the rest by address.
void emily_sched_enqueue(void* self, uint64_t s0, uint64_t s1, void* task);
void emily_sched_signal_event(void* self, uint64_t s0, uint64_t s1, void* event, void* task);
void emily_sched_wait_event(void* self, uint64_t s0, uint64_t s1, void* event, void* task);
void emily_sched_check_error(void* self, uint64_t s0, uint64_t s1);
int emily_synchronize(emily_stream s);
const char* emily_mlx_version(void);

// A row-contiguous array with a's values (a real copy when a is a strided view; MLX's
// `copy` may share a's buffer and strides).
int emily_array_contiguous(emily_stream s, const emily_array* a, emily_array** out);

// ---- evaluation (arrays.cc) ----
int emily_eval(emily_arrays arrays);
int emily_async_eval(emily_arrays arrays);

// ---- creation (arrays.cc) ----
// Copies `nbytes` from `data`.
int emily_from_bytes(const void* data, size_t nbytes, emily_ints shape, int32_t dtype,
                     emily_array** out);

// ---- memory (memory.cc) ----
size_t emily_active_memory(void);
size_t emily_peak_memory(void);
size_t emily_cache_memory(void);
void emily_reset_peak_memory(void);
void emily_clear_cache(void);
size_t emily_set_memory_limit(size_t limit);
size_t emily_set_cache_limit(size_t limit);
size_t emily_get_memory_limit(void);
// glibc only: fixes malloc's mmap threshold at `mmap_threshold` bytes, its trim threshold
// at twice that and its top pad at glibc's default (see memory.cc); 1 when set, 0 where
// unsupported or refused.
int emily_malloc_tune(size_t mmap_threshold);
// glibc only: returns free heap pages to the OS (malloc_trim).
void emily_malloc_trim(void);

// ---- BLAS (blas.cc) ----
// OpenBLAS's kernel family into out; 0 when the BLAS is not a DYNAMIC_ARCH OpenBLAS.
int emily_blas_core(char* out, size_t cap);
// OpenBLAS's thread count; 0 when the BLAS is not OpenBLAS.
int emily_blas_threads(void);
// Gives OpenBLAS as many threads as the process has CPUs (capped as OPENBLAS_NUM_THREADS,
// GOTO_NUM_THREADS or OMP_NUM_THREADS cap them), started with the process's CPU set, where it
// has fewer (threads.cc says why). Returns the thread count after; 0 when not OpenBLAS.
int emily_blas_fit_threads(void);

// ---- threads (threads.cc) ----
// Gives the calling thread the process's CPU set (the main thread's); 1 when set, 0 where
// CPU sets do not exist, -1 on failure.
int emily_thread_use_process_cpus(void);
// CPUs in the process's CPU set; 0 where unknown.
int emily_process_cpu_count(void);

// Ends the process with _exit(status) when it calls exit(), before MLX's static destructors
// run (threads still inside MLX would touch freed objects): 1 installed, 0 not available
// here (glibc only), -1 failed. Once per process; see exit.cc.
int emily_fast_exit_install(void);
// Makes MLX's GPU context (its first allocation) with the process's CPU set, so that the
// driver's own threads do not inherit a bound scheduler's one CPU (streams.cc); 1 when there is
// a GPU, 0 otherwise.
int emily_gpu_start(void);

// ---- the bridge (bridge.cc) ----
// 1 when foreign memory can be wrapped without a copy (the CPU allocator's layout checked).
int emily_external_mode(void);
// 1 when the graph scan can read descriptor reference counts (donation candidates).
int emily_use_count_works(void);
// Wraps `data` (8-byte aligned) without a copy where the allocator allows it, else copies
// once; `*aliased` says which. `release(ctx)` is called exactly once in every case: when MLX
// frees the array, right after the copy, or before an error is returned.
int emily_from_external(void* data, emily_ints shape, int32_t dtype, void (*release)(void*),
                        void* ctx, int32_t* aliased, emily_array** out);
// Walks the unevaluated graph below `roots` before an evaluation on a worker whose streams
// are `own`, and fails when one buffer would not fit under MLX's memory limit. Calls
// `on_foreign` with a new handle for each unevaluated node on another stream (not walked
// further). With flags & 1, calls `on_candidate` with the buffer id of each evaluated input
// MLX would donate but for exactly one extra reference (none when a foreign node was found).
// With flags & 2 and no foreign node, evaluates `roots` and sets `*evaluated`. With
// flags & 4, evaluates only a cheap graph (at most 64 nodes touching at most 2^18
// elements, no factorization, sort, convolution, FFT or compiled function): for a costlier
// one it sets `*evaluated` to -1 and evaluates nothing.
// emily_eval/emily_async_eval run the same memory check.
int emily_graph_scan(emily_arrays roots, const int32_t* own, size_t n_own, int flags, void* ctx,
                     void (*on_foreign)(void*, emily_array*, int32_t, int32_t),
                     void (*on_candidate)(void*, uintptr_t), int* evaluated);

#ifdef __cplusplus
}
#endif
