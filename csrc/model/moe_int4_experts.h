// The routed experts' SwiGLU with INT4 weights (llama4/moe_int4.h), shared by the single-device and
// the expert-parallel MoE block (text_model.cpp, text_model_shard.cpp).
#pragma once
#include "llama4/context.h"
#include "llama4/model.h"

namespace llama4::detail {

// y [R, D] (model dtype `dtype`) = down(silu(gate(x)) * up(x)) per expert over the permuted rows
// x_perm [R, D] (model dtype), expert e owning rows [offsets[e], offsets[e + 1]). The GEMMs take and
// give bfloat16 (W4A16): a float32 model's rows are rounded to bf16 on the way in, as the bf16
// experts' GEMM would read them. Rows from the last offset on are zero (other ranks' choices).
Tensor moe_int4_experts(const Context& ctx, const LayerWeights& w, const TensorView& x_perm,
                        const TensorView& offsets, DType dtype);

}  // namespace llama4::detail
