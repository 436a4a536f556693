// AVX512-BF16 GEMM. vdpbf16ps multiplies 32 bf16 pairs exactly and adds them into 16 fp32 lanes,
// so bf16 weights and activations are used as stored (no widening pass) at twice the fp32 FMA
// rate. Register blocking: MR rows of x times NR rows of w, MR * NR accumulators each holding
// lanes along K, reduced horizontally at the end. Parallel over blocks of w rows, so each thread
// streams its own slice of the weights once per MR-row block of x (x stays in L2).
#include "cpu/gemm_bf16.h"

// GCC 12's _mm512_reduce_add_ps reads an intentionally undefined register (header bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>

namespace llama4::cpu {

bool has_avx512_bf16() {
  // LLAMA4_NO_AVX512_BF16=1 takes the portable path (AVX2 widening), so tests can cover it on
  // machines that have the instructions.
  // The kernels behind this check (here, cpu/gemv.cpp, llama4/roofline.h) are compiled for
  // avx512f/bw/vl/dq + bf16 (cpu/avx512.h), so all of them must be present.
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512bf16") && !std::getenv("LLAMA4_NO_AVX512_BF16");
  return yes;
}

namespace {

#define LLAMA4_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

template <int MR, int NR>
LLAMA4_TARGET_BF16 void micro(float* out, int64_t ldo, const bf16* x, int64_t lda, const bf16* w,
                              int64_t K) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512bh wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(w + j * K + k);
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i * lda + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
    }
  }
  if (k < K) {  // tail: masked loads read zeros past K, which add nothing
    const __mmask32 m = (__mmask32)((1ull << (K - k)) - 1);
    __m512bh wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + j * K + k);
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x + i * lda + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out[i * ldo + j] = _mm512_reduce_add_ps(acc[i][j]);
}

constexpr int kMR = 4, kNR = 6;  // 24 accumulators + 6 weight vectors + 1 activation: 31 of 32 zmm

// All rows of x against w rows [n0, n0 + nr) (nr <= kNR).
template <int NR>
LLAMA4_TARGET_BF16 void row_block(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t M,
                                  int64_t N, int64_t K, int64_t n0) {
  int64_t m = 0;
  for (; m + kMR <= M; m += kMR) micro<kMR, NR>(out + m * N + n0, N, x + m * lda, lda, w + n0 * K, K);
  switch (M - m) {
    case 1: micro<1, NR>(out + m * N + n0, N, x + m * lda, lda, w + n0 * K, K); break;
    case 2: micro<2, NR>(out + m * N + n0, N, x + m * lda, lda, w + n0 * K, K); break;
    case 3: micro<3, NR>(out + m * N + n0, N, x + m * lda, lda, w + n0 * K, K); break;
    default: break;
  }
}

}  // namespace

void gemm_bf16_avx512(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N,
                      int64_t K) {
  const int64_t blocks = (N + kNR - 1) / kNR;
#pragma omp parallel for schedule(static) if (M * N * K > 262144)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t n0 = b * kNR;
    switch (std::min<int64_t>(kNR, N - n0)) {
      case 6: row_block<6>(out, x, lda, w, M, N, K, n0); break;
      case 5: row_block<5>(out, x, lda, w, M, N, K, n0); break;
      case 4: row_block<4>(out, x, lda, w, M, N, K, n0); break;
      case 3: row_block<3>(out, x, lda, w, M, N, K, n0); break;
      case 2: row_block<2>(out, x, lda, w, M, N, K, n0); break;
      default: row_block<1>(out, x, lda, w, M, N, K, n0); break;
    }
  }
}

}  // namespace llama4::cpu
