// CPU MoE block with FP8 routed experts (contract: llama4/moe_fp8.h, ops::moe_fp8): the steps and
// roundings of the CUDA pipeline, with e4m3 emulated exactly, so CPU results predict GPU results.
// Arguments validated and contiguous.
#pragma once
#include "llama4/moe_fp8.h"

namespace llama4::cpu {
void moe_fp8(const TensorView& out, const TensorView& x, const TensorView& router_logits,
             const TensorView& shared, const ops::MoeFp8Experts& experts, int64_t top_k,
             float scale_ub);
}  // namespace llama4::cpu
