// f32 kernels for AVX2 with FMA (compiled with -mavx2 -mfma; see isa.hpp).
#include <immintrin.h>

namespace {
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
inline float hmin(__m256 v) {
  __m128 s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_min_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_min_ss(s, _mm_movehdup_ps(s)));
}
}  // namespace

#define EMILY_ISA_NS avx2
#define EMILY_ISA_STR "avx2"
#define V __m256
#define W 8
#define LOAD _mm256_loadu_ps
#define STORE _mm256_storeu_ps
#define SLEEF(f, u) Sleef_##f##f8_##u##avx2
#define SQRT _mm256_sqrt_ps
#define ADD _mm256_add_ps
#define SUB _mm256_sub_ps
#define MUL _mm256_mul_ps
#define DIV _mm256_div_ps
#define MAX _mm256_max_ps
#define MIN _mm256_min_ps
#define ABS(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), (x))
#define NEG(x) _mm256_xor_ps((x), _mm256_set1_ps(-0.0f))
#define SET1 _mm256_set1_ps
#define SELECT_LT(x, c, a, b) _mm256_blendv_ps((b), (a), _mm256_cmp_ps((x), (c), _CMP_LT_OQ))
#define SELECT_NAN(x, a, b) _mm256_blendv_ps((b), (a), _mm256_cmp_ps((x), (x), _CMP_UNORD_Q))
#define HSUM hsum
#define HMAX hmax
#define HMIN hmin
#define HAS_NAN(x) (_mm256_movemask_ps(_mm256_cmp_ps((x), (x), _CMP_UNORD_Q)) != 0)
#define FMA _mm256_fmadd_ps
#define ANY_GE(x, c) (_mm256_movemask_ps(_mm256_cmp_ps((x), (c), _CMP_GE_OQ)) != 0)
#define VI __m256i
#define QUARTER_INDEX(ax)                                                                                        \
  _mm256_min_epi32(                                                                                              \
      _mm256_max_epi32(_mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(ax), 21), _mm256_set1_epi32(504)), \
                       _mm256_setzero_si256()),                                                                  \
      _mm256_set1_epi32(15))
// Entries 0-7 and 8-15 permuted apart, chosen by bit 3 of the index (moved to the sign bit).
#define LOOKUP16(i, t)                                                                                        \
  _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_load_ps(t), (i)), _mm256_permutevar8x32_ps(_mm256_load_ps((t) + 8), (i)), \
                   _mm256_castsi256_ps(_mm256_slli_epi32((i), 28)))
#define CODES4(p)                                                                                     \
  _mm256_cvtepi32_ps(_mm256_and_si256(                                                                \
      _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(*(p))), _mm256_set_epi32(28, 24, 20, 16, 12, 8, 4, 0)), \
      _mm256_set1_epi32(15)))
#define CODES8(p) _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))))
#define LOADI(p) _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
#define LOADN(p, n) \
  _mm256_maskload_ps((p), _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)))
#define PERMUTE(v, i) _mm256_permutevar8x32_ps((v), (i))
#define NIBBLE(v, s)                                                                                   \
  _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), _mm256_srli_epi32((v), (s))), \
                   _mm256_permutevar8x32_ps(_mm256_setr_ps(8, 9, 10, 11, 12, 13, 14, 15), _mm256_srli_epi32((v), (s))), \
                   _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32((v), (s)), 28)))
#define OR_SIGN(y, x) _mm256_or_ps((y), _mm256_and_ps((x), _mm256_set1_ps(-0.0f)))

#include "kernels/isa.hpp"
