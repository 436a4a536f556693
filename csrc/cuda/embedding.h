// CUDA early-fusion embedding; same contract as cpu/embedding.h (validated, contiguous arguments
// on one CUDA device). Asynchronous on the context's stream: no host synchronisation.
#pragma once
#include <cstdint>

#include "llama4/context.h"

namespace llama4::cuda {
void embedding_fused(const Context& ctx, const TensorView& out, const TensorView& table,
                     const TensorView& ids, const TensorView& image_features,
                     int64_t image_token_id);
}  // namespace llama4::cuda
