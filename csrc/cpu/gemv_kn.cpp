// Weight-streaming GEMV over [K, N] weights (cpu/gemv_kn.h).
#include "cpu/gemv_kn.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "cpu/avx512.h"
#include "cpu/gemv.h"

namespace llama4::cpu {

namespace {

// K rows per block (even: bf16 blocks start on a pair). Each block reads kRows rows side by side,
// one tile of columns at a time, and keeps the sums in a per-thread buffer until the next block.
// 16 measured best here (Zen 4, Scout's expert shapes): 32 and 64 rows side by side ran up to 1.3x
// slower at one activation row, 8 rows reload the sums too often; software prefetch gained nothing.
constexpr int64_t kRows = 16;

// 16 sums to out, masked: fp32 as they are, bf16 rounded once.
LLAMA4_AVX512 inline void put16(float* p, __mmask16 m, __m512 v) { _mm512_mask_storeu_ps(p, m, v); }
LLAMA4_AVX512 inline void put16(bf16* p, __mmask16 m, __m512 v) {
  _mm256_mask_storeu_epi16(&p->bits, m, avx512::to_bf16(v));
}

// Columns [c0, c1) of out for M rows of x, U units of columns per register tile. A unit is 16
// fp32 columns (one sum vector), or 32 bf16 columns: rows k and k + 1 interleaved by 16-bit unpacks
// into two vectors of 16 (w[k, n], w[k + 1, n]) pairs, `lo` holding columns {0-3, 8-11, 16-19,
// 24-27} of the unit and `hi` the others (unpacks stay within 128-bit lanes); the sums keep that
// order until stored. buf: the sums between K blocks, [M, width rounded up to a tile].
template <typename T, int M, int U, typename OT>
LLAMA4_AVX512 void columns(OT* out, int64_t N, const T* x, int64_t lda, const T* w, int64_t ldw, int64_t K,
                           int64_t c0, int64_t c1, float* buf) {
  constexpr bool kBf16 = std::is_same_v<T, uint16_t>;
  constexpr int A = kBf16 ? 2 : 1;  // sum vectors per unit
  constexpr int64_t C = 16 * A;     // columns per unit
  constexpr int64_t W = C * U;      // columns per register tile
  const int64_t ld_buf = (c1 - c0 + W - 1) / W * W;
  // Sums in the unpacked order -> columns in order (the two halves of a bf16 unit).
  const __m512i lo_cols = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i hi_cols = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  for (int64_t k0 = 0; k0 < K; k0 += kRows) {
    const int64_t k1 = std::min(K, k0 + kRows);
    for (int64_t t0 = c0; t0 < c1; t0 += W) {
      int64_t valid[U];  // columns of each unit inside [t0, c1)
      for (int u = 0; u < U; ++u) valid[u] = std::clamp<int64_t>(c1 - t0 - u * C, 0, C);
      float* b = buf + (t0 - c0);
      __m512 acc[M][U * A];
      #pragma GCC unroll 16
      for (int m = 0; m < M; ++m)
        #pragma GCC unroll 16
        for (int j = 0; j < U * A; ++j)
          acc[m][j] = k0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(b + m * ld_buf + j * 16);
      if constexpr (kBf16) {
        __mmask32 mk[U];
        for (int u = 0; u < U; ++u) mk[u] = avx512::mask32(valid[u]);
        int64_t k = k0;
        for (; k + 2 <= k1; k += 2) {
          const T* r0 = w + k * ldw + t0;
          __m512bh xb[M];
          #pragma GCC unroll 8
          for (int m = 0; m < M; ++m) xb[m] = (__m512bh)_mm512_set1_epi32(int(avx512::load_pair(x + m * lda + k)));
          #pragma GCC unroll 16
          for (int u = 0; u < U; ++u) {
            const __m512i a = _mm512_maskz_loadu_epi16(mk[u], r0 + u * C);
            const __m512i c = _mm512_maskz_loadu_epi16(mk[u], r0 + ldw + u * C);
            const __m512bh lo = (__m512bh)_mm512_unpacklo_epi16(a, c), hi = (__m512bh)_mm512_unpackhi_epi16(a, c);
            #pragma GCC unroll 8
            for (int m = 0; m < M; ++m) {
              acc[m][2 * u] = _mm512_dpbf16_ps(acc[m][2 * u], xb[m], lo);
              acc[m][2 * u + 1] = _mm512_dpbf16_ps(acc[m][2 * u + 1], xb[m], hi);
            }
          }
        }
        if (k < k1) {  // odd K: the last row pairs with zeros
          const T* r0 = w + k * ldw + t0;
          __m512bh xb[M];
          for (int m = 0; m < M; ++m) xb[m] = (__m512bh)_mm512_set1_epi32(int(x[m * lda + k]));
          for (int u = 0; u < U; ++u) {
            const __m512i a = _mm512_maskz_loadu_epi16(mk[u], r0 + u * C), c = _mm512_setzero_si512();
            const __m512bh lo = (__m512bh)_mm512_unpacklo_epi16(a, c), hi = (__m512bh)_mm512_unpackhi_epi16(a, c);
            for (int m = 0; m < M; ++m) {
              acc[m][2 * u] = _mm512_dpbf16_ps(acc[m][2 * u], xb[m], lo);
              acc[m][2 * u + 1] = _mm512_dpbf16_ps(acc[m][2 * u + 1], xb[m], hi);
            }
          }
        }
      } else {
        __mmask16 mk[U];
        for (int u = 0; u < U; ++u) mk[u] = avx512::mask16(valid[u]);
        for (int64_t k = k0; k < k1; ++k) {
          const T* r0 = w + k * ldw + t0;
          __m512 xb[M];
          #pragma GCC unroll 8
          for (int m = 0; m < M; ++m) xb[m] = _mm512_set1_ps(x[m * lda + k]);
          #pragma GCC unroll 16
          for (int u = 0; u < U; ++u) {
            const __m512 wv = _mm512_maskz_loadu_ps(mk[u], r0 + u * C);
            #pragma GCC unroll 8
            for (int m = 0; m < M; ++m) acc[m][u] = _mm512_fmadd_ps(xb[m], wv, acc[m][u]);
          }
        }
      }
      if (k1 < K) {
        #pragma GCC unroll 16
        for (int m = 0; m < M; ++m)
          #pragma GCC unroll 16
          for (int j = 0; j < U * A; ++j) _mm512_storeu_ps(b + m * ld_buf + j * 16, acc[m][j]);
        continue;
      }
      for (int m = 0; m < M; ++m) {
        OT* o = out + m * N + t0;
        for (int u = 0; u < U; ++u) {
          if (valid[u] == 0) break;
          if constexpr (kBf16) {
            put16(o + u * C, avx512::mask16(valid[u]), _mm512_permutex2var_ps(acc[m][2 * u], lo_cols, acc[m][2 * u + 1]));
            if (valid[u] > 16)
              put16(o + u * C + 16, avx512::mask16(valid[u] - 16),
                    _mm512_permutex2var_ps(acc[m][2 * u], hi_cols, acc[m][2 * u + 1]));
          } else {
            put16(o + u * C, avx512::mask16(valid[u]), acc[m][u]);
          }
        }
      }
    }
  }
}

template <typename T, int M, typename OT>
void columns_for(OT* out, int64_t N, const T* x, int64_t lda, const T* w, int64_t ldw, int64_t K, int64_t c0,
                 int64_t c1, std::vector<float>& buf) {
  // Register tiles of 16 sum vectors at most: the rest of the 32 hold weights and broadcasts.
  constexpr int U = std::is_same_v<T, uint16_t> ? std::max(1, 8 / M) : std::max(1, 16 / M);
  constexpr int64_t W = (std::is_same_v<T, uint16_t> ? 32 : 16) * U;
  if (K > kRows) buf.resize(size_t(M * ((c1 - c0 + W - 1) / W * W)));
  columns<T, M, U>(out, N, x, lda, w, ldw, K, c0, c1, buf.data());
}

template <typename T, typename OT>
void gemv(OT* out, const T* x, int64_t lda, const T* w, int64_t ldw, int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    std::fill(out, out + M * N, OT{});
    return;
  }
  constexpr int64_t C = std::is_same_v<T, uint16_t> ? 32 : 16;  // threads split whole units
  const int64_t units = (N + C - 1) / C;
  // Below ~128 KB of weights a second thread costs more (fork/join) than it saves.
  const bool parallel = N * K * int64_t(sizeof(T)) >= (int64_t(128) << 10);
#pragma omp parallel if (parallel)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t c0 = units * t / nt * C, c1 = std::min(N, units * (t + 1) / nt * C);
    thread_local std::vector<float> buf;
    if (c0 < c1) {
      switch (M) {
        case 1: columns_for<T, 1>(out, N, x, lda, w, ldw, K, c0, c1, buf); break;
        case 2: columns_for<T, 2>(out, N, x, lda, w, ldw, K, c0, c1, buf); break;
        case 3: columns_for<T, 3>(out, N, x, lda, w, ldw, K, c0, c1, buf); break;
        case 4: columns_for<T, 4>(out, N, x, lda, w, ldw, K, c0, c1, buf); break;
        case 5: columns_for<T, 5>(out, N, x, lda, w, ldw, K, c0, c1, buf); break;
        case 6: columns_for<T, 6>(out, N, x, lda, w, ldw, K, c0, c1, buf); break;
        case 7: columns_for<T, 7>(out, N, x, lda, w, ldw, K, c0, c1, buf); break;
        default: columns_for<T, 8>(out, N, x, lda, w, ldw, K, c0, c1, buf); break;
      }
    }
  }
}

static_assert(kGemvMaxRows == 8, "gemv() dispatches M = 1 .. 8");

}  // namespace

void gemv_kn_bf16(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t ldw, int64_t M, int64_t N,
                  int64_t K) {
  gemv(out, &x->bits, lda, &w->bits, ldw, M, N, K);
}
void gemv_kn_bf16(bf16* out, const bf16* x, int64_t lda, const bf16* w, int64_t ldw, int64_t M, int64_t N,
                  int64_t K) {
  gemv(out, &x->bits, lda, &w->bits, ldw, M, N, K);
}
void gemv_kn_f32(float* out, const float* x, int64_t lda, const float* w, int64_t ldw, int64_t M, int64_t N,
                 int64_t K) {
  gemv(out, x, lda, w, ldw, M, N, K);
}

}  // namespace llama4::cpu
