// CUDA MoE routing ops (bf16/fp32 experts); same contracts as cpu/moe_routing.h (validated by
// ops/moe_routing.cpp; queued on ctx's stream, nothing read back to the host). Bit-identical to
// the CPU: the router and the stable grouping are the FP8 pipeline's kernels (cuda/moe_route.cu),
// the gather and the sum use the CPU's rounding points in the CPU's order.
#pragma once
#include "llama4/context.h"

namespace llama4::cuda {
// logits: [T, E] f32 (other activation dtypes are widened first, exactly).
void moe_route(const Context& ctx, const TensorView& topk_ids, const TensorView& topk_scores,
               const TensorView& logits);
// Expert ids outside [0, E) are not checked on the device (the router never produces them); such
// a pair gets no row.
void moe_permute(const Context& ctx, const TensorView& x_perm, const TensorView& perm_token,
                 const TensorView& perm_slot, const TensorView& expert_offsets, const TensorView& x,
                 const TensorView& topk_ids, const TensorView& topk_scores);
void moe_localize(const Context& ctx, const TensorView& topk_ids, int64_t first, int64_t count);
void moe_unpermute(const Context& ctx, const TensorView& out, const TensorView& y_perm,
                   const TensorView& perm_slot, const TensorView& shared);
}  // namespace llama4::cuda
