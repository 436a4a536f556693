// Weight-streaming GEMV (cpu/gemv.h).
#include "cpu/gemv.h"

#include <omp.h>

#include <algorithm>

#include "cpu/avx512.h"

namespace llama4::cpu {

namespace {

// One SIMD step over K: L weights of one row against L activations.
struct Bf16Step {
  using T = uint16_t;
  static constexpr int64_t L = 32;
  LLAMA4_AVX512 static __m512i load(const T* p) { return _mm512_loadu_si512(p); }
  LLAMA4_AVX512 static __m512i load(const T* p, int64_t n) { return _mm512_maskz_loadu_epi16(avx512::mask32(n), p); }
  LLAMA4_AVX512 static __m512 madd(__m512 acc, __m512i x, __m512i w) {
    return _mm512_dpbf16_ps(acc, (__m512bh)x, (__m512bh)w);
  }
};
struct F32Step {
  using T = float;
  static constexpr int64_t L = 16;
  LLAMA4_AVX512 static __m512 load(const T* p) { return _mm512_loadu_ps(p); }
  LLAMA4_AVX512 static __m512 load(const T* p, int64_t n) { return _mm512_maskz_loadu_ps(avx512::mask16(n), p); }
  LLAMA4_AVX512 static __m512 madd(__m512 acc, __m512 x, __m512 w) { return _mm512_fmadd_ps(x, w, acc); }
};

inline void put(float* p, float v) { *p = v; }
inline void put(bf16* p, float v) { p->bits = f32_to_bf16(v); }

// Weight rows [n0, n1) against MR activation rows.
template <typename S, int MR, typename OT>
LLAMA4_AVX512 void rows(OT* out, const typename S::T* x, int64_t lda, const typename S::T* w, int64_t N,
                        int64_t K, int64_t n0, int64_t n1) {
  constexpr int64_t L = S::L;
  for (int64_t n = n0; n < n1; ++n) {
    const typename S::T* wr = w + n * K;
    __m512 a0[MR], a1[MR];
    for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 2 * L <= K; k += 2 * L) {
      const auto w0 = S::load(wr + k), w1 = S::load(wr + k + L);
      for (int m = 0; m < MR; ++m) {
        a0[m] = S::madd(a0[m], S::load(x + m * lda + k), w0);
        a1[m] = S::madd(a1[m], S::load(x + m * lda + k + L), w1);
      }
    }
    if (k + L <= K) {
      const auto w0 = S::load(wr + k);
      for (int m = 0; m < MR; ++m) a0[m] = S::madd(a0[m], S::load(x + m * lda + k), w0);
      k += L;
    }
    if (k < K) {  // masked loads read zeros past K, which add nothing
      const auto w1 = S::load(wr + k, K - k);
      for (int m = 0; m < MR; ++m) a1[m] = S::madd(a1[m], S::load(x + m * lda + k, K - k), w1);
    }
    for (int m = 0; m < MR; ++m) put(out + m * N + n, _mm512_reduce_add_ps(_mm512_add_ps(a0[m], a1[m])));
  }
}

template <typename S, typename OT>
void gemv(OT* out, const typename S::T* x, int64_t lda, const typename S::T* w, int64_t M, int64_t N,
          int64_t K) {
  if (M <= 0 || N <= 0) return;
  // Below ~128 KB of weights a second thread costs more (fork/join) than it saves.
  const bool parallel = N * K * int64_t(sizeof(typename S::T)) >= (int64_t(128) << 10);
#pragma omp parallel if (parallel)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t n0 = N * t / nt, n1 = N * (t + 1) / nt;
    switch (M) {
      case 1: rows<S, 1>(out, x, lda, w, N, K, n0, n1); break;
      case 2: rows<S, 2>(out, x, lda, w, N, K, n0, n1); break;
      case 3: rows<S, 3>(out, x, lda, w, N, K, n0, n1); break;
      case 4: rows<S, 4>(out, x, lda, w, N, K, n0, n1); break;
      case 5: rows<S, 5>(out, x, lda, w, N, K, n0, n1); break;
      case 6: rows<S, 6>(out, x, lda, w, N, K, n0, n1); break;
      case 7: rows<S, 7>(out, x, lda, w, N, K, n0, n1); break;
      default: rows<S, 8>(out, x, lda, w, N, K, n0, n1); break;
    }
  }
}

}  // namespace

void gemv_bf16(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N, int64_t K) {
  gemv<Bf16Step>(out, &x->bits, lda, &w->bits, M, N, K);
}
void gemv_bf16(bf16* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N, int64_t K) {
  gemv<Bf16Step>(out, &x->bits, lda, &w->bits, M, N, K);
}
void gemv_f32(float* out, const float* x, int64_t lda, const float* w, int64_t M, int64_t N, int64_t K) {
  gemv<F32Step>(out, x, lda, w, M, N, K);
}

}  // namespace llama4::cpu
