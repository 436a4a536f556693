// CPU residual add (linear lives in cpu/linear.h, embedding lookups in cpu/embedding.h).
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
void add(const TensorView& out, const TensorView& a, const TensorView& b);
}  // namespace llama4::cpu
