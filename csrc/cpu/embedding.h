// CPU early-fusion embedding (contract: ops::embedding_fused).
#pragma once
#include <cstdint>

#include "llama4/tensor.h"

namespace llama4::cpu {
// Validated, contiguous arguments; ids in range and the placeholder count equal to the rows of
// image_features (checked by the op entry).
void embedding_fused(const TensorView& out, const TensorView& table, const TensorView& ids,
                     const TensorView& image_features, int64_t image_token_id);
}  // namespace llama4::cpu
