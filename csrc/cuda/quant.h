// CUDA FP8 e4m3 row-wise quantize / dequantize and casts; same contracts as cpu/quant.h.
#pragma once
#include "llama4/context.h"

namespace llama4::cuda {
void quantize_fp8_rowwise(const Context& ctx, const TensorView& q_out, const TensorView& scale_out,
                          const TensorView& x, float scale_ub);
void dequantize_fp8_rowwise(const Context& ctx, const TensorView& out, const TensorView& q,
                            const TensorView& scale);
void cast(const Context& ctx, const TensorView& dst, const TensorView& src);
}  // namespace llama4::cuda
