// CUDA sampler, the twin of cpu/sampling.h (contract: llama4/sampling.h; arguments validated by
// ops/sampling.cpp; logits [B, V] f32 with a unit last-dim stride on one CUDA device). One block
// per row on the legacy default stream; the batch's arrays are uploaded into `workspace` (at least
// sample_workspace_bytes, 256-byte aligned, or nullptr: allocated here, and freeing it
// synchronizes) by an asynchronous copy from one of 4 pinned staging buffers per device, each
// reused only once its previous copy has finished (a wait only when the host runs 4 calls ahead).
#pragma once
#include <cstddef>
#include <cstdint>

#include "llama4/sampling.h"
#include "llama4/tensor.h"

namespace llama4::cuda {
size_t sample_workspace_bytes(int64_t vocab, const SamplerBatch& batch);
void sample(const TensorView& tokens, const TensorView& logprobs, const TensorView& top_ids,
            const TensorView& top_logprobs, const TensorView& status, const TensorView& logits,
            const SamplerBatch& batch, void* workspace);
}  // namespace llama4::cuda
