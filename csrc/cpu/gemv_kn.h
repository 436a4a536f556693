// Weight-streaming matrix-vector products (decode) for weights in Hugging Face's x @ W layout:
// out[M, N] = x[M, K] . w[K, N], w's rows of N contiguous (the fused experts as they lie in the
// checkpoint's memory map), M <= kGemvMaxRows, on CPUs with AVX512-BF16 (has_avx512_bf16()).
// Each thread owns a range of columns and streams the rows of K through it in blocks of
// kRows (16) rows (every row's part read start to end, a few rows side by side), the outputs'
// fp32 sums held in registers within a block and in a per-thread buffer between blocks.
// Every output is one fp32 chain over K in order, the same whatever M and the thread count:
//  - bf16: vdpbf16ps pair by pair (x[2p] w[2p, n] + x[2p + 1] w[2p + 1, n] added to the chain),
//    the arithmetic of the packed GEMM (cpu/gemm_bf16.h), so decode and prefill agree bit for bit;
//  - fp32: one FMA per k.
#pragma once
#include <cstdint>

#include "llama4/numeric.h"

namespace llama4::cpu {

// x rows have stride lda, w rows stride ldw (elements); out is [M, N] contiguous, float32 or
// bfloat16 (rounded once).
void gemv_kn_bf16(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t ldw, int64_t M, int64_t N,
                  int64_t K);
void gemv_kn_bf16(bf16* out, const bf16* x, int64_t lda, const bf16* w, int64_t ldw, int64_t M, int64_t N,
                  int64_t K);
void gemv_kn_f32(float* out, const float* x, int64_t lda, const float* w, int64_t ldw, int64_t M, int64_t N,
                 int64_t K);

}  // namespace llama4::cpu
