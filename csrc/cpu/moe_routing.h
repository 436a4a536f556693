// CPU MoE routing: top-k + sigmoid scores, permutation of tokens by expert, and the inverse.
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
void moe_route(const TensorView& topk_ids, const TensorView& topk_scores, const TensorView& logits);
void moe_permute(const TensorView& x_perm, const TensorView& perm_token, const TensorView& perm_slot,
                 const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_ids,
                 const TensorView& topk_scores);
void moe_localize(const TensorView& topk_ids, int64_t first, int64_t count);
void moe_unpermute(const TensorView& out, const TensorView& y_perm, const TensorView& perm_slot,
                   const TensorView& shared);
}  // namespace llama4::cpu
