// The one CBLAS routine Emily calls itself (the BLAS MLX links: OpenBLAS here).
#pragma once

extern "C" void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                            int lda, const float* b, int ldb, float beta, float* c, int ldc);
