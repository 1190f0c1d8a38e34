// Fourier transforms (mlx::core::fft), declared in src/ops/fft.ops.
#include "mlx/fft.h"
#include "shim.hpp"

using namespace emily;
namespace fft = mx::fft;

namespace {

fft::FFTNorm norm_of(emily_fft_norm norm) {
  switch (norm) {
    case EMILY_FFT_NORM_BACKWARD: return fft::FFTNorm::Backward;
    case EMILY_FFT_NORM_ORTHO: return fft::FFTNorm::Ortho;
    case EMILY_FFT_NORM_FORWARD: return fft::FFTNorm::Forward;
  }
  throw std::invalid_argument("[fft] unknown norm " + std::to_string(static_cast<int>(norm)));
}

std::vector<int> last_two() { return {-2, -1}; }

// With explicit sizes, MLX pads the input with a node on the calling thread's default stream,
// which the worker cannot evaluate; while building those, make the worker's stream the
// default on this thread (restored when the guard goes).
struct DefaultStream {
  mx::StreamContext ctx;
  explicit DefaultStream(emily_stream s) : ctx(stream(s)) {}
};

}  // namespace

extern "C" {

// n-dimensional: op(a, n, axes, norm). Empty n = the sizes of a along axes.
#define EMILY_FFTN_OPS(X) X(fftn) X(ifftn) X(rfftn) X(irfftn)
#define X(name)                                                                               \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_ints n, emily_ints axes, \
                             emily_fft_norm norm, emily_array** out) {                               \
    EMILY_GUARD({                                                                             \
      if (n.len == 0) {                                                                       \
        put(out, fft::name(a->a, ints(axes), norm_of(norm), stream(s)));                      \
      } else {                                                                                \
        DefaultStream guard(s);                                                               \
        put(out, fft::name(a->a, shape(n), ints(axes), norm_of(norm), stream(s)));            \
      }                                                                                       \
    })                                                                                        \
  }
EMILY_FFTN_OPS(X)
#undef X

// one-dimensional: op(a, n, axis, norm). n <= 0 = the size of a along axis.
#define EMILY_FFT1_OPS(X) X(fft, fftn) X(ifft, ifftn) X(rfft, rfftn) X(irfft, irfftn)
#define X(name, nd)                                                                          \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, int64_t n, int64_t axis,   \
                             emily_fft_norm norm, emily_array** out) {                              \
    EMILY_GUARD({                                                                            \
      std::vector<int> ax{to_int(axis, "axis")};                                             \
      if (n <= 0) {                                                                          \
        put(out, fft::nd(a->a, ax, norm_of(norm), stream(s)));                               \
      } else {                                                                               \
        DefaultStream guard(s);                                                              \
        put(out, fft::nd(a->a, mx::Shape{to_int(n, "n")}, ax, norm_of(norm),  \
                         stream(s)));                                                        \
      }                                                                                      \
    })                                                                                       \
  }
EMILY_FFT1_OPS(X)
#undef X

// two-dimensional: op(a, n, axes, norm). Empty axes = {-2, -1}; empty n = the array's sizes.
#define EMILY_FFT2_OPS(X) X(fft2, fftn) X(ifft2, ifftn) X(rfft2, rfftn) X(irfft2, irfftn)
#define X(name, nd)                                                                          \
  EMILY_API int emily_##name(emily_stream s, const emily_array* a, emily_ints n,              \
                             emily_ints axes, emily_fft_norm norm, emily_array** out) {             \
    EMILY_GUARD({                                                                            \
      std::vector<int> ax = axes.len == 0 ? last_two() : ints(axes);                         \
      if (ax.size() != 2) throw std::invalid_argument("[" #name "] needs exactly 2 axes");   \
      if (n.len == 0) {                                                                      \
        put(out, fft::nd(a->a, ax, norm_of(norm), stream(s)));                               \
      } else {                                                                               \
        DefaultStream guard(s);                                                              \
        put(out, fft::nd(a->a, shape(n), ax, norm_of(norm), stream(s)));                     \
      }                                                                                      \
    })                                                                                       \
  }
EMILY_FFT2_OPS(X)
#undef X

EMILY_API int emily_fftshift(emily_stream s, const emily_array* a, emily_ints axes,
                             emily_array** out) {
  EMILY_GUARD(put(out, axes.len == 0 ? fft::fftshift(a->a, stream(s))
                                     : fft::fftshift(a->a, axes_of(axes, a->a.ndim(), "[fftshift]"), stream(s))))
}

EMILY_API int emily_ifftshift(emily_stream s, const emily_array* a, emily_ints axes,
                              emily_array** out) {
  EMILY_GUARD(put(out, axes.len == 0 ? fft::ifftshift(a->a, stream(s))
                                     : fft::ifftshift(a->a, axes_of(axes, a->a.ndim(), "[ifftshift]"), stream(s))))
}
}
