// CUDA kernels of the vision encoder's ops, with the contracts of cpu/vision_ops.h and
// cpu/dense_attention.h (arguments validated by ops/vision_ops.cpp; all on one CUDA device).
#pragma once
#include "llama4/context.h"

namespace llama4::cuda {
void layer_norm(const Context& ctx, const TensorView& out, const TensorView& x,
                const TensorView& weight, const TensorView& bias, float eps);
void gelu(const Context& ctx, const TensorView& out, const TensorView& x);
// x: out's dtype or float32.
void add_bias(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& bias);
// x: [B, N, H, d] with unit stride in its last dim (other strides free); cos, sin: [N, d/2] f32.
void rope_table(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& cos,
                const TensorView& sin);
// q, k, v: [B, N, H, d], any strides; out: [B, N, H, d] contiguous.
void attention_dense(const Context& ctx, const TensorView& out, const TensorView& q, const TensorView& k,
                     const TensorView& v, float scale);
// x: [B, S*S, C] with unit stride in its last dim (other strides free).
void pixel_shuffle(const Context& ctx, const TensorView& out, const TensorView& x, int64_t factor);
// pixels: [B, C, H, W], any float dtype and strides.
void patchify(const Context& ctx, const TensorView& out, const TensorView& pixels, int64_t patch);
}  // namespace llama4::cuda
