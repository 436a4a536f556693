// CUDA early-fusion embedding; same contract as cpu/embedding.h (validated, contiguous arguments
// on one CUDA device). Asynchronous on the default stream: no host synchronisation.
#pragma once
#include <cstdint>

#include "llama4/tensor.h"

namespace llama4::cuda {
void embedding_fused(const TensorView& out, const TensorView& table, const TensorView& ids,
                     const TensorView& image_features, int64_t image_token_id);
}  // namespace llama4::cuda
