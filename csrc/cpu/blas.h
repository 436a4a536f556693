// The CPU BLAS entry points (OpenBLAS: scipy-openblas32, whose symbols carry the scipy_ prefix, or
// the system library). Only cpu/blas.cpp includes the BLAS header.
#pragma once

namespace llama4::cpu::blas {

// C[M, N] = A[M, K] * B[N, K]^T (row strides lda, ldb, ldc); fp32. Parallel over the OpenMP
// threads (set_cpu_threads), each running single-threaded BLAS on a block of rows or columns.
void sgemm_nt(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc);
// C[M, N] = A[M, K] * B[K, N] (B row-major: Hugging Face's x @ W weights read in place); the same
// threading.
void sgemm_nn(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc);

// The same in double (the FP8 expert GEMM's exact accumulation, cpu/moe_gemm_fp8.cpp).
void dgemm_nt(int M, int N, int K, const double* A, int lda, const double* B, int ldb, double* C, int ldc);

}  // namespace llama4::cpu::blas
