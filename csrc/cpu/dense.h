// CPU embedding lookup and residual add (linear lives in cpu/linear.h).
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
void embedding(const TensorView& out, const TensorView& table, const TensorView& ids);
void add(const TensorView& out, const TensorView& a, const TensorView& b);
}  // namespace llama4::cpu
