// CUDA strided copy on one device; same contract as cpu/memory.h.
#pragma once
#include "llama4/tensor.h"

namespace llama4::cuda {
void copy_strided(const TensorView& dst, const TensorView& src);
}
