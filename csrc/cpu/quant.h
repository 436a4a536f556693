// CPU FP8 e4m3 row-wise quantize / dequantize (exact PyTorch float8_e4m3fn rounding), and casts.
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
void quantize_fp8_rowwise(const TensorView& q_out, const TensorView& scale_out, const TensorView& x,
                          float scale_ub);
void dequantize_fp8_rowwise(const TensorView& out, const TensorView& q, const TensorView& scale);
// Elementwise dtype conversion between f32/bf16/f16/fp8 (contiguous, same numel).
void cast(const TensorView& dst, const TensorView& src);
}  // namespace llama4::cpu
