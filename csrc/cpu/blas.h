// The one include of the BLAS header: scipy-openblas32 prefixes its symbols with scipy_, the
// system OpenBLAS does not. Callers use llama4::cpu::blas::sgemm_nt.
#pragma once
#include <cblas.h>

namespace llama4::cpu::blas {

#if LLAMA4_BLAS_SCIPY_PREFIX
#define LLAMA4_CBLAS(name) scipy_cblas_##name
#else
#define LLAMA4_CBLAS(name) cblas_##name
#endif

// C[M, N] = A[M, K] (row stride lda) * B[N, K]^T (row stride ldb), C row stride ldc; fp32.
inline void sgemm_nt(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                     int ldc) {
  LLAMA4_CBLAS(sgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

// The same in double (the FP8 expert GEMM's exact accumulation, cpu/moe_gemm_fp8.cpp).
inline void dgemm_nt(int M, int N, int K, const double* A, int lda, const double* B, int ldb, double* C,
                     int ldc) {
  LLAMA4_CBLAS(dgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0, A, lda, B, ldb, 0.0, C, ldc);
}

}  // namespace llama4::cpu::blas
