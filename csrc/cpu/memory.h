// CPU strided copy (any strides, same shape and dtype).
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
void copy_strided(const TensorView& dst, const TensorView& src);
}
