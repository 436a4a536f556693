// CPU sampler (contract: llama4/sampling.h; arguments validated by ops/sampling.cpp).
//   tokens, status [B] int32; logprobs [B] f32 or undefined; top_ids [B, N] int32 and
//   top_logprobs [B, N] f32 or undefined; logits [B, V] f32 with a unit last-dim stride.
#pragma once
#include "llama4/sampling.h"
#include "llama4/tensor.h"

namespace llama4::cpu {
void sample(const TensorView& tokens, const TensorView& logprobs, const TensorView& top_ids,
            const TensorView& top_logprobs, const TensorView& status, const TensorView& logits,
            const SamplerBatch& batch);
}  // namespace llama4::cpu
