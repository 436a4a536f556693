// CUDA FP8 MoE entry points (plain C++: no CUDA headers), with the contracts of llama4/moe_fp8.h;
// arguments validated by ops/moe_fp8.cpp (contiguous, one CUDA device, TMA-compatible sizes).
// `workspace`: device memory of at least the matching *_workspace_bytes, or nullptr (a
// stream-ordered temporary of ctx).
#pragma once
#include <cstddef>
#include <cstdint>

#include "llama4/context.h"
#include "llama4/moe_fp8.h"

namespace llama4::cuda {
void moe_grouped_gemm_fp8(const Context& ctx, const TensorView& out, const TensorView& a,
                          const TensorView& a_scale, const TensorView& w, const TensorView& w_scale,
                          const TensorView& expert_offsets, void* workspace);
size_t moe_grouped_gemm_fp8_workspace_bytes(int device, int64_t experts);

void moe_fp8(const Context& ctx, const TensorView& out, const TensorView& x,
             const TensorView& router_logits, const TensorView& shared,
             const ops::MoeFp8Experts& experts, int64_t top_k, float scale_ub, void* workspace);
size_t moe_fp8_workspace_bytes(int device, int64_t tokens, int64_t hidden, int64_t intermediate,
                               int64_t experts, int64_t top_k);
}  // namespace llama4::cuda
