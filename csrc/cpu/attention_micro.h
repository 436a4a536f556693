// Inner loops of the CPU attention kernel, on fp32 rows:
//   qk_scores:     s[r, j] = (q[r] . k[j]) * scale          q [rows, d] (stride qst), k [nk, d] (stride kst)
//   pv_accumulate: acc[r, :] += sum_j p[r, j] * v[j, :]      p [rows, nk] (stride pst), v like k
//   scale_max:     s[j] *= scale, returns the max
//   exp_sub_sum:   s[j] = exp(s[j] - m), returns the sum      (exp(-inf) = 0: masked keys)
// With AVX2+FMA (LLAMA4_CPU_FLAGS) they run register-blocked intrinsics: 2-3 rows x 4 keys of
// independent accumulators for the dot products (a single accumulator would leave the loop bound by
// FMA latency, and every dot would pay a horizontal sum alone), 2-3 rows x 16-32 columns of the
// output kept in registers across keys for the V sum. Otherwise plain loops. Sums are in fp32 in a fixed
// order for a given d, so results are deterministic run to run and across thread counts.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LLAMA4_ATTN_AVX2 1
#else
#define LLAMA4_ATTN_AVX2 0
#endif

namespace llama4::cpu::micro {

#if LLAMA4_ATTN_AVX2

inline float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

// exp for x <= 0 (scores minus their max): Cephes expf polynomial on x - n*ln2, scaled by 2^n.
// Relative error ~2e-7. Inputs below -87 (including -inf) give exactly 0; NaN stays NaN.
inline __m256 exp_nonpos(__m256 x) {
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_NLT_UQ);
  x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);  // maxps returns its 2nd operand for NaN
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

template <int RB, int KB>
inline void qk_block(const float* q, int64_t qst, const float* k, int64_t kst, int64_t d, float scale,
                     float* s, int64_t sst) {
  __m256 acc[RB][KB];
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < KB; ++j) acc[r][j] = _mm256_setzero_ps();
  int64_t x = 0;
  for (; x + 8 <= d; x += 8) {
    __m256 kv[KB];
    for (int j = 0; j < KB; ++j) kv[j] = _mm256_loadu_ps(k + j * kst + x);
    for (int r = 0; r < RB; ++r) {
      const __m256 qv = _mm256_loadu_ps(q + r * qst + x);
      for (int j = 0; j < KB; ++j) acc[r][j] = _mm256_fmadd_ps(qv, kv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < RB; ++r) {
    float t[KB];
    if constexpr (KB == 4) {  // four horizontal sums at once: hadd pairs, then fold the halves
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[r][0], acc[r][1]), _mm256_hadd_ps(acc[r][2], acc[r][3]));
      _mm_storeu_ps(t, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    } else {
      for (int j = 0; j < KB; ++j) t[j] = hsum(acc[r][j]);
    }
    for (int j = 0; j < KB; ++j) {
      for (int64_t xx = x; xx < d; ++xx) t[j] += q[r * qst + xx] * k[j * kst + xx];
      s[r * sst + j] = t[j] * scale;
    }
  }
}

template <int RB, int XB>
inline void pv_block(const float* p, int64_t pst, const float* v, int64_t vst, int64_t nk, float* acc,
                     int64_t ast) {
  __m256 a[RB][XB];
  for (int r = 0; r < RB; ++r)
    for (int u = 0; u < XB; ++u) a[r][u] = _mm256_loadu_ps(acc + r * ast + 8 * u);
  for (int64_t j = 0; j < nk; ++j) {
    __m256 vv[XB];
    for (int u = 0; u < XB; ++u) vv[u] = _mm256_loadu_ps(v + j * vst + 8 * u);
    for (int r = 0; r < RB; ++r) {
      const __m256 w = _mm256_set1_ps(p[r * pst + j]);
      for (int u = 0; u < XB; ++u) a[r][u] = _mm256_fmadd_ps(w, vv[u], a[r][u]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int u = 0; u < XB; ++u) _mm256_storeu_ps(acc + r * ast + 8 * u, a[r][u]);
}

template <int RB>
inline void pv_rows(const float* p, int64_t pst, const float* v, int64_t vst, int64_t nk, int64_t d,
                    float* acc, int64_t ast) {
  constexpr int XB = RB >= 3 ? 2 : 4;  // RB * XB accumulators + XB rows of V within 16 registers
  int64_t x = 0;
  for (; x + 8 * XB <= d; x += 8 * XB) pv_block<RB, XB>(p, pst, v + x, vst, nk, acc + x, ast);
  for (; x + 8 <= d; x += 8) pv_block<RB, 1>(p, pst, v + x, vst, nk, acc + x, ast);
  for (; x < d; ++x)
    for (int r = 0; r < RB; ++r) {
      float t = acc[r * ast + x];
      for (int64_t j = 0; j < nk; ++j) t += p[r * pst + j] * v[j * vst + x];
      acc[r * ast + x] = t;
    }
}

template <int RB>
inline void qk_rows(const float* q, int64_t qst, const float* k, int64_t kst, int64_t nk, int64_t d,
                    float scale, float* s, int64_t sst) {
  int64_t j = 0;
  for (; j + 4 <= nk; j += 4) qk_block<RB, 4>(q, qst, k + j * kst, kst, d, scale, s + j, sst);
  for (; j < nk; ++j) qk_block<RB, 1>(q, qst, k + j * kst, kst, d, scale, s + j, sst);
}

#endif  // LLAMA4_ATTN_AVX2

inline void qk_scores(const float* q, int64_t qst, int64_t rows, const float* k, int64_t kst, int64_t nk,
                      int64_t d, float scale, float* s, int64_t sst) {
#if LLAMA4_ATTN_AVX2
  int64_t r = 0;
  if (rows % 2 == 1 && rows >= 3) {  // odd counts (GQA 5 for Llama 4): one 3-row block first
    qk_rows<3>(q, qst, k, kst, nk, d, scale, s, sst);
    r = 3;
  }
  for (; r + 2 <= rows; r += 2) qk_rows<2>(q + r * qst, qst, k, kst, nk, d, scale, s + r * sst, sst);
  if (r < rows) qk_rows<1>(q + r * qst, qst, k, kst, nk, d, scale, s + r * sst, sst);
#else
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < nk; ++j) {
      float t = 0.f;
      for (int64_t x = 0; x < d; ++x) t += q[r * qst + x] * k[j * kst + x];
      s[r * sst + j] = t * scale;
    }
#endif
}

inline void pv_accumulate(const float* p, int64_t pst, int64_t rows, const float* v, int64_t vst, int64_t nk,
                          int64_t d, float* acc, int64_t ast) {
#if LLAMA4_ATTN_AVX2
  int64_t r = 0;
  if (rows % 2 == 1 && rows >= 3) {
    pv_rows<3>(p, pst, v, vst, nk, d, acc, ast);
    r = 3;
  }
  for (; r + 2 <= rows; r += 2) pv_rows<2>(p + r * pst, pst, v, vst, nk, d, acc + r * ast, ast);
  if (r < rows) pv_rows<1>(p + r * pst, pst, v, vst, nk, d, acc + r * ast, ast);
#else
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < nk; ++j) {
      const float w = p[r * pst + j];
      for (int64_t x = 0; x < d; ++x) acc[r * ast + x] += w * v[j * vst + x];
    }
#endif
}

// s[j] *= scale for j < n; returns the max of the scaled values (-inf for n == 0). The max is
// exact whatever the order, so the vector path gives the scalar path's result.
inline float scale_max(float* s, int64_t n, float scale) {
  float m = -INFINITY;
  int64_t j = 0;
#if LLAMA4_ATTN_AVX2
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 vm = _mm256_set1_ps(-INFINITY);
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(s + j), vs);
    _mm256_storeu_ps(s + j, v);
    vm = _mm256_max_ps(vm, v);
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, vm);
  for (float v : t) m = v > m ? v : m;
#endif
  for (; j < n; ++j) {
    s[j] *= scale;
    m = s[j] > m ? s[j] : m;
  }
  return m;
}

inline float exp_sub_sum(float* s, int64_t n, float m) {
  float sum = 0.f;
  int64_t j = 0;
#if LLAMA4_ATTN_AVX2
  __m256 vs = _mm256_setzero_ps();
  const __m256 vm = _mm256_set1_ps(m);
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    _mm256_storeu_ps(s + j, e);
    vs = _mm256_add_ps(vs, e);
  }
  if (j < n) {  // the tail through a padded vector, so every element takes the same exp
    alignas(32) float buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = j + i < n ? s[j + i] - m : -INFINITY;
    const __m256 e = exp_nonpos(_mm256_load_ps(buf));
    _mm256_store_ps(buf, e);
    vs = _mm256_add_ps(vs, e);
    for (int64_t i = 0; j + i < n; ++i) s[j + i] = buf[i];
    j = n;
  }
  sum = hsum(vs);
#endif
  for (; j < n; ++j) {
    s[j] = std::exp(s[j] - m);
    sum += s[j];
  }
  return sum;
}

}  // namespace llama4::cpu::micro
