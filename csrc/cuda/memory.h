// CUDA strided copy on one device; same contract as cpu/memory.h.
#pragma once
#include "llama4/context.h"

namespace llama4::cuda {
void copy_strided(const Context& ctx, const TensorView& dst, const TensorView& src);
}
