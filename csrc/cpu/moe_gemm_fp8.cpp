// CPU FP8 grouped GEMM: for each expert e and each of its rows r,
//   out[r, n] = bf16( (float(sum_k a[r, k] * w[e, n, k]) * w_scale[e, n]) * a_scale[r] )
// with the k-sum computed EXACTLY in double (why that is exact: llama4/moe_fp8.h), so the result
// does not depend on summation order, thread count or which of the two paths ran:
//  - few rows (decode, M <= kStreamRows): weight streaming. Each weight row is read once, widened
//    into an L1-resident buffer and dotted with all M rows: e4m3 bits (s eeee mmm) moved into an
//    IEEE half (s eeeee mmmmmmmmmm) as (s << 15) | (eeeemmm << 7) are exactly value * 2^-8
//    (normals and subnormals alike), so F16C converts 8 weights at once. The NaN codes 0x7F/0xFF
//    would come out finite that way: a row holding one is widened through the table instead.
//  - many rows (prefill): e4m3 -> double through a 256-entry table, blocks of weight rows at a
//    time, then OpenBLAS dgemm (the pattern of cpu/linear.cpp's bf16 path, in double).
#include "cpu/moe_gemm_fp8.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "cpu/blas.h"
#include "cpu/vec8.h"
#include "llama4/numeric.h"

namespace llama4::cpu {

namespace {

constexpr int64_t kStreamRows = 32;  // up to here streaming beats widening blocks for dgemm
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

// acc[m * N] = sum_k ad[m * K + k] * wd[k] for MC rows (exact: every partial sum is representable).
template <int MC>
void dot_rows(double* acc, int64_t N, const double* ad, const double* wd, int64_t K) {
  const int64_t K4 = K / 4 * 4;
  __m256d accv[MC];
  for (int m = 0; m < MC; ++m) accv[m] = _mm256_setzero_pd();
  for (int64_t k = 0; k < K4; k += 4) {
    const __m256d wv = _mm256_loadu_pd(wd + k);
    for (int m = 0; m < MC; ++m) accv[m] = _mm256_fmadd_pd(_mm256_loadu_pd(ad + m * K + k), wv, accv[m]);
  }
  for (int m = 0; m < MC; ++m) {
    double s = hsum(accv[m]);
    for (int64_t k = K4; k < K; ++k) s += ad[m * K + k] * wd[k];
    acc[m * N] = s;
  }
}

// dot_rows for the first MC rows, widening the weight row w [K] on the way (into wd as well when
// `keep`, for the following rows): 8 codes at a time through F16C (value * 2^-8, times 256:
// exact); the tail through the table. A row holding a NaN code is widened through the table and
// redone (the F16C route would make 0x7F a finite 480).
template <int MC>
void widen_dot_rows(double* acc, int64_t N, const double* ad, const uint8_t* w, double* wd,
                    int64_t K, bool keep) {
  const int64_t K8 = K / 8 * 8;
  const __m256d two8 = _mm256_set1_pd(256.0);
  __m128i nan_codes = _mm_setzero_si128();
  __m256d accv[MC];
  for (int m = 0; m < MC; ++m) accv[m] = _mm256_setzero_pd();
  for (int64_t k = 0; k < K8; k += 8) {
    const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + k)));
    __m128i nan;
    const __m256 f = _mm256_cvtph_ps(vec8::e4m3_to_f16_scaled(b, &nan));
    nan_codes = _mm_or_si128(nan_codes, nan);
    const __m256d lo = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(f)), two8);
    const __m256d hi = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)), two8);
    if (keep) {
      _mm256_storeu_pd(wd + k, lo);
      _mm256_storeu_pd(wd + k + 4, hi);
    }
    for (int m = 0; m < MC; ++m) {
      accv[m] = _mm256_fmadd_pd(_mm256_loadu_pd(ad + m * K + k), lo, accv[m]);
      accv[m] = _mm256_fmadd_pd(_mm256_loadu_pd(ad + m * K + k + 4), hi, accv[m]);
    }
  }
  if (!_mm_testz_si128(nan_codes, nan_codes)) {
    widen(wd, w, K);
    dot_rows<MC>(acc, N, ad, wd, K);
    return;
  }
  widen(wd + K8, w + K8, K - K8);
  for (int m = 0; m < MC; ++m) {
    double s = hsum(accv[m]);
    for (int64_t k = K8; k < K; ++k) s += ad[m * K + k] * wd[k];
    acc[m * N] = s;
  }
}

// Row chunks of 1..8 rows, with or without widening the weight row on the way.
void chunk(double* acc, int64_t N, const double* ad, const uint8_t* w, double* wd, int64_t K, int MC,
           bool widen_first, bool keep) {
#define LLAMA4_FP8_CHUNK(MCV)                                          \
  case MCV:                                                           \
    if (widen_first) widen_dot_rows<MCV>(acc, N, ad, w, wd, K, keep); \
    else dot_rows<MCV>(acc, N, ad, wd, K);                            \
    break;
  switch (MC) {
    LLAMA4_FP8_CHUNK(1)
    LLAMA4_FP8_CHUNK(2)
    LLAMA4_FP8_CHUNK(3)
    LLAMA4_FP8_CHUNK(4)
    LLAMA4_FP8_CHUNK(5)
    LLAMA4_FP8_CHUNK(6)
    LLAMA4_FP8_CHUNK(7)
    default: LLAMA4_FP8_CHUNK(8)
  }
#undef LLAMA4_FP8_CHUNK
}

// One output row from its exact sums: the CUDA epilogue's roundings, float(acc), times w_scale,
// times a_scale, to bf16.
inline void epilogue_row(uint16_t* out, const double* acc, int64_t n, const float* w_scale, float a_scale) {
  for (int64_t j = 0; j < n; ++j) out[j] = f32_to_bf16((float(acc[j]) * w_scale[j]) * a_scale);
}

// The experts with few rows, all in ONE parallel loop over (expert, weight row): each weight row
// is read once, widened while its expert's first 8 rows use it, and kept (in an L1/L2-sized buffer)
// for the expert's other rows, 8 at a time. One loop rather than one per expert, because every
// parallel region ends in a barrier, and on a loaded machine each barrier can cost a time slice.
void stream_experts(const std::vector<int64_t>& experts, const int32_t* off, uint16_t* out,
                    const uint8_t* a, const float* a_scale, const uint8_t* w, const float* w_scale,
                    int64_t N, int64_t K) {
  std::vector<int64_t> base(experts.size() + 1, 0);  // row of each listed expert in ad / acc
  for (size_t i = 0; i < experts.size(); ++i) base[i + 1] = base[i] + off[experts[i] + 1] - off[experts[i]];
  const int64_t rows = base.back(), work = int64_t(experts.size()) * N;
  std::vector<double> ad(size_t(rows * K)), acc(size_t(rows * N));
  for (size_t i = 0; i < experts.size(); ++i)
    widen(ad.data() + base[i] * K, a + int64_t(off[experts[i]]) * K, (base[i + 1] - base[i]) * K);
#pragma omp parallel if (work * K > 65536)
  {
    std::vector<double> wd(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t j = 0; j < work; ++j) {
      const size_t i = size_t(j / N);
      const int64_t n = j % N, M = base[i + 1] - base[i];
      const uint8_t* wr = w + (experts[i] * N + n) * K;
      for (int64_t m0 = 0; m0 < M; m0 += 8)
        chunk(acc.data() + (base[i] + m0) * N + n, N, ad.data() + (base[i] + m0) * K, wr, wd.data(), K,
              int(std::min<int64_t>(8, M - m0)), m0 == 0, M > 8);
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const size_t i = size_t(std::upper_bound(base.begin(), base.end(), r) - base.begin() - 1);
      const int64_t e = experts[i], ro = off[e] + (r - base[i]);  // row of a / out
      epilogue_row(out + ro * N, acc.data() + r * N, N, w_scale + e * N, a_scale[ro]);
    }
  }
}

// One expert with many rows: a [M, K] (scales a_scale [M]) against w [N, K] (scales w_scale [N]),
// table-widened blocks and dgemm.
void dgemm_expert(uint16_t* out, const uint8_t* a, const float* a_scale, const uint8_t* w,
                  const float* w_scale, int64_t M, int64_t N, int64_t K) {
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
#pragma omp parallel for schedule(static) if (mc * nb > 65536)
      for (int64_t m = 0; m < mc; ++m)
        epilogue_row(out + (m0 + m) * N + n0, acc.data() + m * nb, nb, w_scale + n0, a_scale[m0 + m]);
    }
  }
}

}  // namespace

void moe_grouped_gemm_fp8(const TensorView& out, const TensorView& a, const TensorView& a_scale,
                          const TensorView& w, const TensorView& w_scale,
                          const TensorView& expert_offsets) {
  const int64_t E = w.size(0), N = w.size(1), K = w.size(2);
  const int32_t* off = expert_offsets.ptr<int32_t>();
  uint16_t* o = out.ptr<uint16_t>();
  const uint8_t *ap = a.ptr<uint8_t>(), *wp = w.ptr<uint8_t>();
  const float *as = a_scale.ptr<float>(), *ws = w_scale.ptr<float>();
  std::vector<int64_t> few;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = off[e], M = off[e + 1] - r0;
    if (M > kStreamRows) dgemm_expert(o + r0 * N, ap + r0 * K, as + r0, wp + e * N * K, ws + e * N, M, N, K);
    else if (M > 0) few.push_back(e);
  }
  if (!few.empty()) stream_experts(few, off, o, ap, as, wp, ws, N, K);
}

}  // namespace llama4::cpu
