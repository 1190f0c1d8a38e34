// f32 unary kernels for AVX2 with FMA (compiled with -mavx2 -mfma; see unary_isa.hpp).
#include <immintrin.h>

#define EMILY_ISA_NS avx2
#define V __m256
#define W 8
#define LOAD _mm256_loadu_ps
#define STORE _mm256_storeu_ps
#define SLEEF(f, u) Sleef_##f##f8_##u##avx2
#define SQRT _mm256_sqrt_ps
#define ADD _mm256_add_ps
#define SUB _mm256_sub_ps
#define DIV _mm256_div_ps
#define ABS(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), (x))
#define SET1 _mm256_set1_ps
#define SELECT_LT(x, c, a, b) _mm256_blendv_ps((b), (a), _mm256_cmp_ps((x), (c), _CMP_LT_OQ))

#include "kernels/unary_isa.hpp"
