// CPU kernels of the vision encoder's element-wise and data-movement ops (contracts in
// llama4/ops.h; arguments validated by ops/vision_ops.cpp). Inputs are contiguous unless noted.
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
void layer_norm(const TensorView& out, const TensorView& x, const TensorView& weight,
                const TensorView& bias, float eps);
void gelu(const TensorView& out, const TensorView& x);
// x: out's dtype or float32.
void add_bias(const TensorView& out, const TensorView& x, const TensorView& bias);
// x: [B, N, H, d] with unit stride in its last dim (other strides free).
void rope_table(const TensorView& out, const TensorView& x, const TensorView& cos,
                const TensorView& sin);
// x: [B, S*S, C] with unit stride in its last dim (other strides free).
void pixel_shuffle(const TensorView& out, const TensorView& x, int64_t factor);
// pixels: [B, C, H, W], any float dtype and strides.
void patchify(const TensorView& out, const TensorView& pixels, int64_t patch);
}  // namespace llama4::cpu
