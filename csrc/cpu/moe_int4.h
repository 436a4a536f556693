// CPU INT4 (W4A16) grouped GEMM over experts and the int4 quantizer (contract: llama4/moe_int4.h).
// Arguments validated: out [R, N] bf16 contiguous; x [R, K] bf16 contiguous; w [E, N, K/2] uint8;
// w_scale [E, N, K/G] bf16; expert_offsets [E + 1] int32, valid (0 = off[0] <= ... <= off[E] <= R).
#pragma once
#include <cstdint>

#include "llama4/numeric.h"
#include "llama4/tensor.h"

namespace llama4::cpu {

// The grouped GEMM: the AVX-512 kernel when has_avx512_bf16(), else the portable one.
void moe_grouped_gemm_int4(const TensorView& out, const TensorView& x, const TensorView& w,
                           const TensorView& w_scale, const TensorView& expert_offsets);

// The kernels behind it, over raw pointers (same arguments; G the group size).
struct Int4Gemm {
  bf16* out;
  const bf16* x;
  const uint8_t* w;
  const bf16* w_scale;
  const int32_t* off;
  int64_t E, N, K, G;
};
void moe_grouped_gemm_int4_portable(const Int4Gemm& a);
void moe_grouped_gemm_int4_avx512(const Int4Gemm& a);  // only where has_avx512_bf16()

// Validated: q_out [..., N, K/2] u8, scale_out [..., N, K/group] bf16, w [..., N, K] f32/bf16, all
// contiguous. Throws ValueError for a group holding a non-finite value.
void quantize_int4_grouped(const TensorView& q_out, const TensorView& scale_out, const TensorView& w,
                           int64_t group);

}  // namespace llama4::cpu
