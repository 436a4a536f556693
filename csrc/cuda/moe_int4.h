// CUDA INT4 (W4A16) grouped GEMM over experts (plain C++: no CUDA headers), with the contract of
// llama4/moe_int4.h and the two kernels of llama4/moe_int4_config.h; arguments validated by
// ops/moe_int4.cpp (contiguous weights, one CUDA device, 16-byte aligned x / w / out).
// `workspace`: device memory of at least moe_grouped_gemm_int4_workspace_bytes, or nullptr (a
// stream-ordered temporary of ctx). The CUTLASS kernel also takes the transposed scales
// (E * N * K / G bf16) as a stream-ordered temporary of ctx: no allocation call, no synchronisation.
#pragma once
#include <cstddef>
#include <cstdint>

#include "llama4/context.h"
#include "llama4/moe_int4_config.h"
#include "llama4/tensor.h"

namespace llama4::cuda {
void moe_grouped_gemm_int4(const Context& ctx, const TensorView& out, const TensorView& x,
                           const TensorView& w, const TensorView& w_scale,
                           const TensorView& expert_offsets, void* workspace, MoeInt4Kernel kernel);
size_t moe_grouped_gemm_int4_workspace_bytes(int device, int64_t experts);
}  // namespace llama4::cuda
