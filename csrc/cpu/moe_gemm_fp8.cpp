// CPU FP8 grouped GEMM: for each expert e and each of its rows r,
//   out[r, n] = bf16( (float(sum_k a[r, k] * w[e, n, k]) * w_scale[e, n]) * a_scale[r] )
// with the k-sum computed EXACTLY in double (why that is exact: llama4/moe_fp8.h), so the result
// does not depend on summation order, thread count or which of the two paths ran:
//  - few rows (decode, M <= kStreamRows): weight streaming. Each weight row is read once and
//    widened in registers: e4m3 bits (s eeee mmm) moved into an IEEE half (s eeeee mmmmmmmmmm) as
//    (s << 15) | (eeeemmm << 7) are exactly value * 2^-8 (normals and subnormals alike), so F16C
//    converts 8 weights at once; the 2^-8 is undone at the end (exact). The NaN codes 0x7F/0xFF
//    would come out finite that way: a row holding one is redone through the table.
//  - many rows (prefill): e4m3 -> double through a 256-entry table, blocks of weight rows at a
//    time, then OpenBLAS dgemm (the pattern of cpu/linear.cpp's bf16 path, in double).
#include "cpu/moe_gemm_fp8.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "cpu/blas.h"
#include "llama4/numeric.h"

namespace llama4::cpu {

namespace {

constexpr int kStreamRows = 8;
constexpr int64_t kRowChunk = 512;                  // activation rows widened at a time (prefill)
constexpr int64_t kBlockDoubles = int64_t(2) << 20;  // widened weight block: 16 MB of doubles

// The value of every e4m3 code, exactly, as double.
struct Fp8Table {
  double v[256];
  Fp8Table() {
    for (int i = 0; i < 256; ++i) v[i] = double(fp8e4m3_to_f32(uint8_t(i)));
  }
};
const double* fp8_table() {
  static const Fp8Table t;
  return t.v;
}

void widen(double* dst, const uint8_t* src, int64_t n) {
  const double* lut = fp8_table();
  for (int64_t i = 0; i < n; ++i) dst[i] = lut[src[i]];
}

inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// acc[m * N + n] = sum_k ad[m * K + k] * value(w[n * K + k]) for M rows; ad is widened exactly.
template <int M>
void stream_rows(double* acc, const double* ad, const uint8_t* w, int64_t N, int64_t K) {
  const double* lut = fp8_table();
  const int64_t K8 = K / 8 * 8;
  const __m128i low7 = _mm_set1_epi16(0x7F), sign = _mm_set1_epi16(0x80);
#pragma omp parallel for schedule(static) if (N * K > 65536)
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t* wr = w + n * K;
    __m256d accv[M];
    for (int m = 0; m < M; ++m) accv[m] = _mm256_setzero_pd();
    __m128i nan_codes = _mm_setzero_si128();
    for (int64_t k = 0; k < K8; k += 8) {
      const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(wr + k)));
      const __m128i mag = _mm_and_si128(b, low7);
      nan_codes = _mm_or_si128(nan_codes, _mm_cmpeq_epi16(mag, low7));
      const __m128i half = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(b, sign), 8), _mm_slli_epi16(mag, 7));
      const __m256 f = _mm256_cvtph_ps(half);  // value * 2^-8, exact
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
      const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
      for (int m = 0; m < M; ++m) {
        accv[m] = _mm256_fmadd_pd(_mm256_loadu_pd(ad + m * K + k), lo, accv[m]);
        accv[m] = _mm256_fmadd_pd(_mm256_loadu_pd(ad + m * K + k + 4), hi, accv[m]);
      }
    }
    const bool redo = !_mm_testz_si128(nan_codes, nan_codes);
    for (int m = 0; m < M; ++m) {
      double s = hsum(accv[m]) * 256.0;
      for (int64_t k = K8; k < K; ++k) s += ad[m * K + k] * lut[wr[k]];
      if (redo) {  // a NaN weight: the table keeps it NaN
        s = 0.0;
        for (int64_t k = 0; k < K; ++k) s += ad[m * K + k] * lut[wr[k]];
      }
      acc[m * N + n] = s;
    }
  }
}

void stream_any(double* acc, const double* ad, const uint8_t* w, int M, int64_t N, int64_t K) {
  switch (M) {
    case 1: stream_rows<1>(acc, ad, w, N, K); break;
    case 2: stream_rows<2>(acc, ad, w, N, K); break;
    case 3: stream_rows<3>(acc, ad, w, N, K); break;
    case 4: stream_rows<4>(acc, ad, w, N, K); break;
    case 5: stream_rows<5>(acc, ad, w, N, K); break;
    case 6: stream_rows<6>(acc, ad, w, N, K); break;
    case 7: stream_rows<7>(acc, ad, w, N, K); break;
    default: stream_rows<8>(acc, ad, w, N, K); break;
  }
}

// out rows [M, ldo] (bf16) from exact sums acc [M, nb] (row stride nb) of columns [n0, n0 + nb):
// the CUDA epilogue's roundings: float(acc), times w_scale, times a_scale, to bf16.
void epilogue(uint16_t* out, int64_t ldo, const double* acc, int64_t M, int64_t nb, int64_t n0,
              const float* w_scale, const float* a_scale) {
#pragma omp parallel for schedule(static) if (M * nb > 65536)
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t j = 0; j < nb; ++j) {
      const float v = float(acc[m * nb + j]);
      const float y = (v * w_scale[n0 + j]) * a_scale[m];
      out[m * ldo + n0 + j] = f32_to_bf16(y);
    }
  }
}

// One expert: rows a [M, K] (scales a_scale [M]) against w [N, K] (scales w_scale [N]).
void expert_gemm(uint16_t* out, const uint8_t* a, const float* a_scale, const uint8_t* w,
                 const float* w_scale, int64_t M, int64_t N, int64_t K) {
  if (M <= kStreamRows) {
    std::vector<double> ad(size_t(M * K)), acc(size_t(M * N));
    widen(ad.data(), a, M * K);
    stream_any(acc.data(), ad.data(), w, int(M), N, K);
    epilogue(out, N, acc.data(), M, N, 0, w_scale, a_scale);
    return;
  }
  const int64_t block = std::min(N, std::max<int64_t>(16, kBlockDoubles / K));
  std::vector<double> wd(size_t(block * K)), ad(size_t(std::min(M, kRowChunk) * K)),
      acc(size_t(std::min(M, kRowChunk) * block));
  for (int64_t m0 = 0; m0 < M; m0 += kRowChunk) {
    const int64_t mc = std::min(kRowChunk, M - m0);
    widen(ad.data(), a + m0 * K, mc * K);
    for (int64_t n0 = 0; n0 < N; n0 += block) {
      const int64_t nb = std::min(block, N - n0);
#pragma omp parallel for schedule(static)
      for (int64_t j = 0; j < nb; ++j) widen(wd.data() + j * K, w + (n0 + j) * K, K);
      blas::dgemm_nt(int(mc), int(nb), int(K), ad.data(), int(K), wd.data(), int(K), acc.data(), int(nb));
      epilogue(out + m0 * N, N, acc.data(), mc, nb, n0, w_scale, a_scale + m0);
    }
  }
}

}  // namespace

void moe_grouped_gemm_fp8(const TensorView& out, const TensorView& a, const TensorView& a_scale,
                          const TensorView& w, const TensorView& w_scale,
                          const TensorView& expert_offsets) {
  const int64_t E = w.size(0), N = w.size(1), K = w.size(2);
  const int32_t* off = expert_offsets.ptr<int32_t>();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = off[e], M = off[e + 1] - r0;
    if (M == 0) continue;
    expert_gemm(out.ptr<uint16_t>() + r0 * N, a.ptr<uint8_t>() + r0 * K, a_scale.ptr<float>() + r0,
                w.ptr<uint8_t>() + e * N * K, w_scale.ptr<float>() + e * N, M, N, K);
  }
}

}  // namespace llama4::cpu
