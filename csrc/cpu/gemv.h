// Weight-streaming matrix-vector products for few activation rows (decode): out[M, N] =
// x[M, K] . w[N, K]^T with M <= kGemvMaxRows, on CPUs with AVX512-BF16 (has_avx512_bf16()).
// Decode reads every weight once per step and does 2 flops per weight per row, so it is bound by
// memory bandwidth: each thread streams one contiguous range of weight rows, one row at a time from
// start to end (several rows read side by side measured ~45% slower here: the prefetchers follow one
// stream per thread best), and dots each row with all M activation rows held in L1/L2.
// Every output is the same fp32 sum whatever M and the thread count: two accumulator chains over
// K (even and odd vectors), added, then reduced across lanes.
#pragma once
#include <cstdint>

#include "llama4/numeric.h"

namespace llama4::cpu {

constexpr int64_t kGemvMaxRows = 8;

// bf16 x bf16 -> fp32 sums (vdpbf16ps). x rows have stride lda; w is [N, K] contiguous; out is
// [M, N] contiguous, float32 or bfloat16 (rounded once).
void gemv_bf16(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N, int64_t K);
void gemv_bf16(bf16* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N, int64_t K);
// float32 x float32 (FMA), same contract.
void gemv_f32(float* out, const float* x, int64_t lda, const float* w, int64_t M, int64_t N, int64_t K);

}  // namespace llama4::cpu
