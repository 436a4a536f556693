// CPU bidirectional multi-head attention of independent batch rows (contract: ops::attention_dense).
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
// q, k, v: [B, N, H, d], any strides, one dtype; out: [B, N, H, d] contiguous, same dtype.
void attention_dense(const TensorView& out, const TensorView& q, const TensorView& k,
                     const TensorView& v, float scale);
}  // namespace llama4::cpu
