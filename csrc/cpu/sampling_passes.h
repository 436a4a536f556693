// The sampler's passes over a chunk of one row of logits (cpu/sampling.cpp runs them over a
// row, one chunk per thread). AVX-512 versions where the CPU has AVX-512 F/DQ/BW/VL (selected at
// run time, as cpu/gemm_bf16.cpp does; LLAMA4_NO_AVX512=1 forces the portable path), portable
// ones otherwise. Both compute every per-token value with the operations of core/sampling_arith.h,
// so they give the same bits (tests/test_sampler_cpp.py compares them).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace llama4::cpu::sampling {

// Tokens per block of the inverse-CDF search; chunks start at multiples of it.
constexpr int64_t kBlock = 4096;

bool use_avx512();

struct ScanResult {
  float max;         // largest logit (-inf when there is none)
  float min_finite;  // smallest finite logit (+inf when there is none)
  bool bad;          // a NaN or +inf
};
ScanResult scan(const float* x, int64_t n);
// First index i in [0, n) with x[i] == v, or n.
int64_t first_equal(const float* x, int64_t n, float v);

// sum_i floor(exp((x_i - m) / T) * 2^F), i in [0, n).
uint64_t exp_sum(const float* x, int64_t n, float m, float T, int F);

// The sampling pass over y[0, n): w[i] = exp(s_i), s_i = (y_i - m) / T; bucket[i] = bucket_of(s_i);
// block_sum[b] = sum of W over block b (kBlock tokens; ceil(n / kBlock) entries). Histograms by
// bucket when not null (two tables of 256, entry t * 256 + b, to be added up by the caller): the
// number of tokens (hist_count) and their W (hist_mass). Returns the sum of W and adds the number
// of live tokens (bucket != 255) to *live.
struct WeightsOut {
  float* w;
  uint8_t* bucket;
  uint64_t* block_sum;
  int64_t* hist_count;  // [2 * 256] or null
  uint64_t* hist_mass;  // [2 * 256] or null
};
uint64_t weights(const float* y, int64_t n, float m, float T, int F, const WeightsOut& out,
                 int64_t* live);

// block_sum[b] = sum of W over the kept tokens of block b, where token i (id = base + i) is kept
// when (order_key(y_i) > cut_key || (order_key(y_i) == cut_key && id <= cut_id)) && w_i >= min_p.
void kept_block_sums(const float* y, const float* w, int64_t n, int64_t base, uint32_t cut_key,
                     int32_t cut_id, float min_p, int F, uint64_t* block_sum);

// Appends base + i for every i in [0, n) with lo <= bucket[i] <= hi, in order.
void find_buckets(const uint8_t* bucket, int64_t n, int64_t base, int lo, int hi,
                  std::vector<int32_t>* ids);

// The n_top largest x over [0, n) as (value, base + i), value descending then id ascending.
void top_n(const float* x, int64_t n, int64_t base, int n_top,
           std::vector<std::pair<float, int32_t>>* out);

}  // namespace llama4::cpu::sampling
