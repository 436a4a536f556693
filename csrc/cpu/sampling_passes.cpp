// The sampler's row passes (cpu/sampling_passes.h): portable loops over core/sampling_arith.h,
// and AVX-512 loops that perform the same IEEE operations lane by lane (exp is llama4/mathfn.h's
// exp_f32 evaluated 8 doubles at a time), so both paths give identical bits.
#include "cpu/sampling_passes.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "core/sampling_arith.h"

namespace llama4::cpu::sampling {

using namespace llama4::sampling;

bool use_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                          !std::getenv("LLAMA4_NO_AVX512");
  return yes;
}

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Inserts (v, id) into `top` (value descending, id ascending; ids arrive ascending), keeping n.
void insert_top(std::vector<std::pair<float, int32_t>>* top, int n, float v, int32_t id) {
  auto& t = *top;
  if (int(t.size()) == n && !(v > t.back().first)) return;
  auto pos = std::upper_bound(t.begin(), t.end(), v,
                              [](float a, const std::pair<float, int32_t>& b) { return a > b.first; });
  t.insert(pos, {v, id});
  if (int(t.size()) > n) t.pop_back();
}

// ---- portable ---------------------------------------------------------------------------------

ScanResult scan_scalar(const float* x, int64_t n) {
  ScanResult r{-kInf, kInf, false};
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    r.bad |= is_nan_or_pinf(v);
    if (v > r.max) r.max = v;
    if (v < r.min_finite && v != -kInf) r.min_finite = v;
  }
  return r;
}

uint64_t weights_scalar(const float* y, int64_t n, float m, float T, int F, const WeightsOut& out,
                        int64_t* live) {
  const float cut = live_cut(F);
  uint64_t total = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    uint64_t block = 0;
    for (int64_t i = b0; i < std::min(n, b0 + kBlock); ++i) {
      const float s = scaled_logit(y[i], m, T);
      const float w = exp_weight(s);
      const uint64_t W = fixed_weight(w, F);
      const int b = bucket_of(s, cut);
      out.w[i] = w;
      out.bucket[i] = uint8_t(b);
      block += W;
      *live += b != kDeadBucket;
      if (out.hist_count) out.hist_count[b] += 1;
      if (out.hist_mass) out.hist_mass[b] += W;
    }
    out.block_sum[b0 / kBlock] = block;
    total += block;
  }
  return total;
}

// ---- AVX-512 ----------------------------------------------------------------------------------

#define LLAMA4_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

// exp_weight (core/sampling_arith.h) of 16 lanes, operation for operation.
LLAMA4_TARGET_AVX512 inline __m512 exp16(__m512 s) {
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(s, _mm512_set1_ps(kExpLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(k, _mm512_set1_ps(-kExpLn2Hi), s);
  r = _mm512_fmadd_ps(k, _mm512_set1_ps(-kExpLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpC7);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
  const __mmask16 ok = _mm512_cmp_ps_mask(s, _mm512_set1_ps(kExpMin), _CMP_GE_OQ);
  return _mm512_maskz_mul_ps(ok, p, _mm512_castsi512_ps(e));
}

// floor(w * 2^F) of 16 weights, summed pairwise into a vector of 8 u64 (under `mask` when given).
LLAMA4_TARGET_AVX512 inline __m512i fixed16(__m512 w, __m512d scale, __m512i acc, __mmask16 mask) {
  const __m512i lo = _mm512_cvttpd_epu64(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(w)), scale));
  const __m512i hi = _mm512_cvttpd_epu64(_mm512_mul_pd(
      _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1))), scale));
  acc = _mm512_mask_add_epi64(acc, __mmask8(mask), acc, lo);
  return _mm512_mask_add_epi64(acc, __mmask8(mask >> 8), acc, hi);
}

LLAMA4_TARGET_AVX512 inline __m512 scaled16(__m512 y, __m512 m, __m512 T, bool unit_T) {
  const __m512 d = _mm512_sub_ps(y, m);
  return unit_T ? d : _mm512_div_ps(d, T);
}

LLAMA4_TARGET_AVX512 ScanResult scan_avx512(const float* x, int64_t n) {
  __m512 mx = _mm512_set1_ps(-kInf), mn = _mm512_set1_ps(kInf);
  const __m512 pinf = _mm512_set1_ps(kInf), ninf = _mm512_set1_ps(-kInf);
  __mmask16 bad = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v, pinf, _CMP_EQ_OQ);
    mx = _mm512_max_ps(mx, v);
    mn = _mm512_mask_min_ps(mn, _mm512_cmp_ps_mask(v, ninf, _CMP_NEQ_OQ), mn, v);
  }
  ScanResult r = scan_scalar(x + i, n - i);
  r.bad |= bad != 0;
  r.max = std::max(r.max, _mm512_reduce_max_ps(mx));
  r.min_finite = std::min(r.min_finite, _mm512_reduce_min_ps(mn));
  return r;
}

LLAMA4_TARGET_AVX512 int64_t first_equal_avx512(const float* x, int64_t n, float v) {
  const __m512 vv = _mm512_set1_ps(v);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __mmask16 eq = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), vv, _CMP_EQ_OQ);
    if (eq) return i + __builtin_ctz(eq);
  }
  for (; i < n; ++i)
    if (x[i] == v) return i;
  return n;
}

LLAMA4_TARGET_AVX512 uint64_t exp_sum_avx512(const float* x, int64_t n, float m, float T, int F) {
  const __m512 mv = _mm512_set1_ps(m), Tv = _mm512_set1_ps(T);
  const __m512d scale = _mm512_set1_pd(pow2d(F));
  const bool unit_T = T == 1.0f;
  __m512i acc = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    acc = fixed16(exp16(scaled16(_mm512_loadu_ps(x + i), mv, Tv, unit_T)), scale, acc, 0xFFFF);
  uint64_t total = uint64_t(_mm512_reduce_add_epi64(acc));
  for (; i < n; ++i) total += fixed_weight(exp_weight(scaled_logit(x[i], m, T)), F);
  return total;
}

LLAMA4_TARGET_AVX512 uint64_t weights_avx512(const float* y, int64_t n, float m, float T, int F,
                                             const WeightsOut& out, int64_t* live) {
  const __m512 mv = _mm512_set1_ps(m), Tv = _mm512_set1_ps(T);
  const __m512 cut = _mm512_set1_ps(live_cut(F)), neg8 = _mm512_set1_ps(-8.0f);
  const __m512i b254 = _mm512_set1_epi32(254), dead = _mm512_set1_epi32(kDeadBucket);
  const __m512d scale = _mm512_set1_pd(pow2d(F));
  const bool unit_T = T == 1.0f;
  uint64_t total = 0;
  int64_t n_live = 0;
  alignas(64) uint64_t W[16];
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t end = std::min(n, b0 + kBlock);
    __m512i acc = _mm512_setzero_si512();
    int64_t i = b0;
    for (; i + 16 <= end; i += 16) {
      const __m512 s = scaled16(_mm512_loadu_ps(y + i), mv, Tv, unit_T);
      const __m512 w = exp16(s);
      _mm512_storeu_ps(out.w + i, w);
      const __mmask16 is_live = _mm512_cmp_ps_mask(s, cut, _CMP_GE_OQ);
      __m512i b = _mm512_min_epi32(_mm512_cvttps_epi32(_mm512_mul_ps(s, neg8)), b254);
      b = _mm512_mask_blend_epi32(is_live, dead, b);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.bucket + i), _mm512_cvtepi32_epi8(b));
      n_live += __builtin_popcount(is_live);
      if (out.hist_mass) {  // W of each lane, added to its bucket (two tables: fewer stalls)
        const __m512i lo = _mm512_cvttpd_epu64(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(w)), scale));
        const __m512i hi = _mm512_cvttpd_epu64(_mm512_mul_pd(
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1))), scale));
        _mm512_store_si512(W, lo);
        _mm512_store_si512(W + 8, hi);
        acc = _mm512_add_epi64(acc, _mm512_add_epi64(lo, hi));
        const uint8_t* bk = out.bucket + i;
        for (int l = 0; l < 16; l += 2) {
          out.hist_mass[bk[l]] += W[l];
          out.hist_mass[256 + bk[l + 1]] += W[l + 1];
        }
      } else {
        acc = fixed16(w, scale, acc, 0xFFFF);
        if (out.hist_count) {
          const uint8_t* bk = out.bucket + i;
          for (int l = 0; l < 16; l += 2) {
            out.hist_count[bk[l]] += 1;
            out.hist_count[256 + bk[l + 1]] += 1;
          }
        }
      }
    }
    uint64_t block = uint64_t(_mm512_reduce_add_epi64(acc));
    if (i < end) {  // the row's last, partial vector
      WeightsOut tail{out.w + i, out.bucket + i, &out.block_sum[b0 / kBlock], out.hist_count,
                      out.hist_mass};
      int64_t tail_live = 0;
      block += weights_scalar(y + i, end - i, m, T, F, tail, &tail_live);
      n_live += tail_live;
    }
    out.block_sum[b0 / kBlock] = block;
    total += block;
  }
  *live += n_live;
  return total;
}

LLAMA4_TARGET_AVX512 inline __m512i keys16(__m512 y) {
  __m512i bits = _mm512_castps_si512(y);
  bits = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_NEQ_UQ), bits);
  const __m512i flip = _mm512_or_si512(_mm512_srai_epi32(bits, 31), _mm512_set1_epi32(int(0x80000000u)));
  return _mm512_xor_si512(bits, flip);
}

LLAMA4_TARGET_AVX512 void kept_block_sums_avx512(const float* y, const float* w, int64_t n,
                                                 int64_t base, uint32_t cut_key, int32_t cut_id,
                                                 float min_p, int F, uint64_t* block_sum) {
  const __m512i ck = _mm512_set1_epi32(int(cut_key)), cid = _mm512_set1_epi32(cut_id);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 mp = _mm512_set1_ps(min_p);
  const __m512d scale = _mm512_set1_pd(pow2d(F));
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t end = std::min(n, b0 + kBlock);
    __m512i acc = _mm512_setzero_si512();
    int64_t i = b0;
    for (; i + 16 <= end; i += 16) {
      const __m512i key = keys16(_mm512_loadu_ps(y + i));
      const __m512i id = _mm512_add_epi32(_mm512_set1_epi32(int32_t(base + i)), lane);
      const __mmask16 in_prefix =
          _mm512_cmpgt_epu32_mask(key, ck) |
          (_mm512_cmpeq_epi32_mask(key, ck) & _mm512_cmple_epi32_mask(id, cid));
      const __m512 wv = _mm512_loadu_ps(w + i);
      const __mmask16 keep = in_prefix & _mm512_cmp_ps_mask(wv, mp, _CMP_GE_OQ);
      acc = fixed16(wv, scale, acc, keep);
    }
    uint64_t block = uint64_t(_mm512_reduce_add_epi64(acc));
    for (; i < end; ++i) {
      const uint32_t key = order_key(y[i]);
      const bool in_prefix = key > cut_key || (key == cut_key && base + i <= cut_id);
      if (in_prefix && w[i] >= min_p) block += fixed_weight(w[i], F);
    }
    block_sum[b0 / kBlock] = block;
  }
}

LLAMA4_TARGET_AVX512 void top_n_avx512(const float* x, int64_t n, int64_t base, int n_top,
                                       std::vector<std::pair<float, int32_t>>* out) {
  int64_t i = 0;
  for (; i < n && int(out->size()) < n_top; ++i) insert_top(out, n_top, x[i], int32_t(base + i));
  for (; i + 16 <= n; i += 16) {
    __mmask16 gt = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), _mm512_set1_ps(out->back().first),
                                      _CMP_GT_OQ);
    while (gt) {
      const int l = __builtin_ctz(gt);
      gt &= gt - 1;
      insert_top(out, n_top, x[i + l], int32_t(base + i + l));
    }
  }
  for (; i < n; ++i) insert_top(out, n_top, x[i], int32_t(base + i));
}

LLAMA4_TARGET_AVX512 void find_buckets_avx512(const uint8_t* bucket, int64_t n, int64_t base, int lo,
                                              int hi, std::vector<int32_t>* ids) {
  const __m512i vlo = _mm512_set1_epi8(char(lo)), vhi = _mm512_set1_epi8(char(hi));
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i b = _mm512_loadu_si512(bucket + i);
    uint64_t hit = _mm512_cmpge_epu8_mask(b, vlo) & _mm512_cmple_epu8_mask(b, vhi);
    while (hit) {
      ids->push_back(int32_t(base + i + __builtin_ctzll(hit)));
      hit &= hit - 1;
    }
  }
  for (; i < n; ++i)
    if (bucket[i] >= lo && bucket[i] <= hi) ids->push_back(int32_t(base + i));
}

}  // namespace

// ---- dispatch -----------------------------------------------------------------------------------

ScanResult scan(const float* x, int64_t n) {
  return use_avx512() ? scan_avx512(x, n) : scan_scalar(x, n);
}

int64_t first_equal(const float* x, int64_t n, float v) {
  if (use_avx512()) return first_equal_avx512(x, n, v);
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == v) return i;
  return n;
}

uint64_t exp_sum(const float* x, int64_t n, float m, float T, int F) {
  if (use_avx512()) return exp_sum_avx512(x, n, m, T, F);
  uint64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += fixed_weight(exp_weight(scaled_logit(x[i], m, T)), F);
  return total;
}

uint64_t weights(const float* y, int64_t n, float m, float T, int F, const WeightsOut& out,
                 int64_t* live) {
  return use_avx512() ? weights_avx512(y, n, m, T, F, out, live)
                      : weights_scalar(y, n, m, T, F, out, live);
}

void kept_block_sums(const float* y, const float* w, int64_t n, int64_t base, uint32_t cut_key,
                     int32_t cut_id, float min_p, int F, uint64_t* block_sum) {
  if (use_avx512()) return kept_block_sums_avx512(y, w, n, base, cut_key, cut_id, min_p, F, block_sum);
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    uint64_t block = 0;
    for (int64_t i = b0; i < std::min(n, b0 + kBlock); ++i) {
      const uint32_t key = order_key(y[i]);
      const bool in_prefix = key > cut_key || (key == cut_key && base + i <= cut_id);
      if (in_prefix && w[i] >= min_p) block += fixed_weight(w[i], F);
    }
    block_sum[b0 / kBlock] = block;
  }
}

void find_buckets(const uint8_t* bucket, int64_t n, int64_t base, int lo, int hi,
                  std::vector<int32_t>* ids) {
  if (use_avx512()) return find_buckets_avx512(bucket, n, base, lo, hi, ids);
  for (int64_t i = 0; i < n; ++i)
    if (bucket[i] >= lo && bucket[i] <= hi) ids->push_back(int32_t(base + i));
}

void top_n(const float* x, int64_t n, int64_t base, int n_top,
           std::vector<std::pair<float, int32_t>>* out) {
  out->clear();
  if (n_top <= 0) return;
  if (use_avx512()) return top_n_avx512(x, n, base, n_top, out);
  for (int64_t i = 0; i < n; ++i) insert_top(out, n_top, x[i], int32_t(base + i));
}

}  // namespace llama4::cpu::sampling
