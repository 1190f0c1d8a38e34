// f32 kernels for AVX-512F (compiled with -mavx512f -mfma; see isa.hpp).
#include <immintrin.h>

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
#define SET1 _mm512_set1_ps
#define SELECT_LT(x, c, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask((x), (c), _CMP_LT_OQ), (b), (a))
#define HSUM _mm512_reduce_add_ps
#define HMAX _mm512_reduce_max_ps
#define HMIN _mm512_reduce_min_ps
#define HAS_NAN(x) (_mm512_cmp_ps_mask((x), (x), _CMP_UNORD_Q) != 0)

#include "kernels/isa.hpp"
