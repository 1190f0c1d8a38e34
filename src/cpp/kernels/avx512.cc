// f32 kernels for AVX-512F (compiled with -mavx512f -mfma; see isa.hpp).
#include <immintrin.h>

#include <cstdint>

// Lane reductions through two 256-bit halves (GCC 12's _mm512_reduce_*_ps warn of an
// uninitialised value inside its own header).
namespace {
template <typename F>
inline float lanes(__m512 v, F op) {
  alignas(64) float b[16];
  _mm512_store_ps(b, v);
  __m256 h = op(_mm256_load_ps(b), _mm256_load_ps(b + 8));
  __m128 s = _mm256_castps256_ps128(op(h, _mm256_permute2f128_ps(h, h, 1)));
  s = _mm256_castps256_ps128(op(_mm256_castps128_ps256(s), _mm256_castps128_ps256(_mm_movehl_ps(s, s))));
  s = _mm256_castps256_ps128(op(_mm256_castps128_ps256(s), _mm256_castps128_ps256(_mm_movehdup_ps(s))));
  return _mm_cvtss_f32(s);
}
inline float hsum(__m512 v) { return lanes(v, [](__m256 a, __m256 b) { return _mm256_add_ps(a, b); }); }
inline float hmax(__m512 v) { return lanes(v, [](__m256 a, __m256 b) { return _mm256_max_ps(a, b); }); }
inline float hmin(__m512 v) { return lanes(v, [](__m256 a, __m256 b) { return _mm256_min_ps(a, b); }); }
}  // namespace

#define EMILY_ISA_NS avx512
#define EMILY_ISA_STR "avx512"
#define V __m512
#define W 16
#define LOAD _mm512_loadu_ps
#define STORE _mm512_storeu_ps
#define SLEEF(f, u) Sleef_##f##f16_##u##avx512f
#define SQRT _mm512_sqrt_ps
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define MUL _mm512_mul_ps
#define DIV _mm512_div_ps
#define MAX _mm512_max_ps
#define MIN _mm512_min_ps
#define ABS _mm512_abs_ps
#define NEG(x) _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)))
#define SET1 _mm512_set1_ps
#define SELECT_LT(x, c, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask((x), (c), _CMP_LT_OQ), (b), (a))
#define SELECT_NAN(x, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask((x), (x), _CMP_UNORD_Q), (b), (a))
#define HSUM hsum
#define HMAX hmax
#define HMIN hmin
#define HAS_NAN(x) (_mm512_cmp_ps_mask((x), (x), _CMP_UNORD_Q) != 0)
#define FMA _mm512_fmadd_ps
#define ANY_GE(x, c) (_mm512_cmp_ps_mask((x), (c), _CMP_GE_OQ) != 0)
#define VI __m512i
#define QUARTER_INDEX(ax)                                                                                        \
  _mm512_min_epi32(                                                                                              \
      _mm512_max_epi32(_mm512_sub_epi32(_mm512_srli_epi32(_mm512_castps_si512(ax), 21), _mm512_set1_epi32(504)), \
                       _mm512_setzero_si512()),                                                                  \
      _mm512_set1_epi32(15))
#define LOOKUP16(i, t) _mm512_permutexvar_ps((i), _mm512_load_ps(t))
// two words, each broadcast to 8 lanes, shifted by 0, 4, ..., 28
#define CODES4(p)                                                                                         \
  _mm512_cvtepi32_ps(_mm512_and_si512(                                                                    \
      _mm512_srlv_epi32(                                                                                  \
          _mm512_permutexvar_epi32(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),     \
                                   _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))), \
          _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0)),                    \
      _mm512_set1_epi32(15)))
#define CODES8(p) _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))))
#define LOADI(p) _mm512_loadu_si512(reinterpret_cast<const void*>(p))
#define LOADN(p, n) _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << (n)) - 1), (p))
#define PERMUTE(v, i) _mm512_permutexvar_ps((i), (v))
// (vpermps reads the low 4 bits of each index)
#define NIBBLE(v, s) \
  _mm512_permutexvar_ps(_mm512_srli_epi32((v), (s)), _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define OR_SIGN(y, x) \
  _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN))))

#include "kernels/isa.hpp"
