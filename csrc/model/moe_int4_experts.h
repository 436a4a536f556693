// The SwiGLU with INT4 weights (llama4/moe_int4.h): the routed experts', shared by the single-device
// and the expert-parallel MoE block (text_model.cpp, text_model_shard.cpp), and the dense one of an
// INT4 shared expert or MLP.
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

// y [T, D] (model dtype) = down(silu(gate(x)) * up(x)) with INT4 gate_up [2I, D/2] (+ scales
// [2I, D/G]) and down [D, I/2] (+ [D, I/G]) for every row of x [T, D]: the same roundings as the
// routed experts above (x rounded to bf16 on the way in, the bf16 GEMM outputs and SwiGLU, widened
// back). Under tensor parallelism I is the rank's share and y its partial sum.
Tensor mlp_int4(const Context& ctx, const TensorView& x, const TensorView& gate_up, const TensorView& gate_up_scale,
                const TensorView& down, const TensorView& down_scale, DType dtype);

}  // namespace llama4::detail
