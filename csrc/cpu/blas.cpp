// sgemm on the OpenMP thread pool. OpenBLAS's own pthread pool and libgomp's pool both busy-wait
// after each call; with the two alternating (BLAS matmuls between OpenMP kernels, as every layer
// does) the spinning pool steals the cores from the working one: on 2 cores the vision tower ran
// 2.5x slower than with OMP_WAIT_POLICY=passive. So BLAS runs single-threaded, and its calls are
// spread over the OpenMP threads here: one thread pool, one wait policy.
#include "cpu/blas.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <mutex>

namespace llama4::cpu::blas {

#if LLAMA4_BLAS_SCIPY_PREFIX
#define LLAMA4_CBLAS(name) scipy_cblas_##name
#define LLAMA4_OPENBLAS_SET_THREADS scipy_openblas_set_num_threads
#else
#define LLAMA4_CBLAS(name) cblas_##name
#define LLAMA4_OPENBLAS_SET_THREADS openblas_set_num_threads
#endif

namespace {

void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { LLAMA4_OPENBLAS_SET_THREADS(1); });
}

// B is [N, K] (trans_b) or [K, N].
void gemm(bool trans_b, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
  LLAMA4_CBLAS(sgemm)(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B,
                      ldb, 0.0f, C, ldc);
}
void gemm(bool trans_b, int M, int N, int K, const double* A, int lda, const double* B, int ldb, double* C,
          int ldc) {
  LLAMA4_CBLAS(dgemm)(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, 1.0, A, lda, B,
                      ldb, 0.0, C, ldc);
}

constexpr int64_t kMinFlopsPerThread = int64_t(1) << 22;  // below this, splitting costs more than it saves
constexpr int kMinRows = 16;                               // rows (or columns) per block at least

template <typename T>
void gemm_parallel(bool trans_b, int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc) {
  single_threaded_blas();
  const int64_t flops = 2 * int64_t(M) * N * K;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int by_work = int(std::max<int64_t>(1, flops / kMinFlopsPerThread));
  const bool split_rows = M >= N || M >= threads * kMinRows;  // prefer rows: contiguous A and C blocks
  const int extent = split_rows ? M : N;
  const int blocks = std::min({threads, by_work, std::max(1, extent / kMinRows)});
  if (blocks <= 1) {
    gemm(trans_b, M, N, K, A, lda, B, ldb, C, ldc);
    return;
  }
  const int step = (extent + blocks - 1) / blocks;
#pragma omp parallel for num_threads(blocks) schedule(static, 1)
  for (int b = 0; b < blocks; ++b) {
    const int lo = b * step, n = std::min(extent, lo + step) - lo;
    if (n <= 0) continue;
    if (split_rows)
      gemm(trans_b, n, N, K, A + int64_t(lo) * lda, lda, B, ldb, C + int64_t(lo) * ldc, ldc);
    else
      gemm(trans_b, M, n, K, A, lda, B + (trans_b ? int64_t(lo) * ldb : lo), ldb, C + lo, ldc);
  }
}

}  // namespace

void sgemm_nt(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
  gemm_parallel(true, M, N, K, A, lda, B, ldb, C, ldc);
}

void sgemm_nn(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
  gemm_parallel(false, M, N, K, A, lda, B, ldb, C, ldc);
}

void dgemm_nt(int M, int N, int K, const double* A, int lda, const double* B, int ldb, double* C, int ldc) {
  gemm_parallel(true, M, N, K, A, lda, B, ldb, C, ldc);
}

}  // namespace llama4::cpu::blas
