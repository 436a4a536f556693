// CPU FP8 grouped GEMM over experts, emulating the CUDA kernel's epilogue exactly and summing over
// k exactly (contract: llama4/moe_fp8.h, ops::moe_grouped_gemm_fp8). Arguments validated and
// contiguous: out [R, N] bf16; a [R, K] e4m3; a_scale [R] f32; w [E, N, K] e4m3; w_scale [E, N] f32;
// expert_offsets [E + 1] int32, valid (0 = off[0] <= ... <= off[E] = R).
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
void moe_grouped_gemm_fp8(const TensorView& out, const TensorView& a, const TensorView& a_scale,
                          const TensorView& w, const TensorView& w_scale,
                          const TensorView& expert_offsets);
}  // namespace llama4::cpu
