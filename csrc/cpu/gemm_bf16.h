// bf16 x bf16 -> fp32 GEMM with AVX512-BF16 dot-product instructions, for CPUs that have them
// (Zen 4, Sapphire Rapids, Cooper Lake). out[M, N] = x[M, K] . w[N, K]^T, both K-contiguous
// (or w given as [K, N]: the _kn entries).
// Every output is one fp32 chain over K in order (vdpbf16ps, pair by pair): the same bits for any
// thread count and any other rows in the batch.
#pragma once
#include <cstdint>

#include "llama4/numeric.h"

namespace llama4::cpu {
// True when this CPU executes AVX512-BF16 with F/BW/VL/DQ (checked once; LLAMA4_NO_AVX512_BF16=1 says no).
bool has_avx512_bf16();
// x rows have stride lda (elements); w is [N, K] contiguous; out is [M, N] contiguous, fp32 or
// bf16 (the fp32 sums rounded once, as f32_to_bf16 rounds).
void gemm_bf16_avx512(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N,
                      int64_t K);
void gemm_bf16_avx512(bf16* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N,
                      int64_t K);
// The same sums with w [K, N] (row stride ldw: Hugging Face's x @ W layout), read in place.
void gemm_bf16_avx512_kn(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t ldw, int64_t M,
                         int64_t N, int64_t K);
void gemm_bf16_avx512_kn(bf16* out, const bf16* x, int64_t lda, const bf16* w, int64_t ldw, int64_t M,
                         int64_t N, int64_t K);
}  // namespace llama4::cpu
