// Launchers of the CUDA FP8 MoE pipeline's own kernels (cuda/moe_route.cu, cuda/moe_quant.cu),
// used by cuda/moe_fp8.cu. Pointers are device memory on the current device; every launcher queues
// its kernel on `stream` and none reads anything back to the host. Shapes: T tokens,
// k choices per token, R = T * k (token, choice) pairs, E experts, D hidden, I intermediate.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "llama4/moe_fp8.h"
#include "llama4/numeric.h"
#include "llama4/tensor.h"

namespace llama4::cuda::moe {

constexpr int kMaxTopK = kMoeFp8CudaMaxTopK;        // the router keeps its choices in registers
constexpr int kMaxExperts = kMoeFp8CudaMaxExperts;  // the offsets scan is one block

// ids [R] int32, scores [R] float (sigmoid of the chosen logits, rounded to score_dtype):
// the k largest logits of each row of logits [T, E] f32, as cpu/moe_routing.cpp chooses them.
void route(cudaStream_t stream, const float* logits, int64_t T, int E, int k, DType score_dtype,
           int32_t* ids, float* scores);
// counts [E]: pairs per expert; rank [R]: each pair's position among its expert's pairs, in pair
// order (so the permutation is the CPU's stable counting sort).
void expert_ranks(cudaStream_t stream, const int32_t* ids, int64_t R, int E, int32_t* rank,
                  int32_t* counts);
// offsets [E + 1] = exclusive prefix sum of counts.
void expert_offsets(cudaStream_t stream, const int32_t* counts, int E, int32_t* offsets);

// For each pair i = t * k + j: slot = offsets[ids[i]] + rank[i]; perm_slot[i] = slot; row `slot`
// of (a_q [R, D] e4m3, a_scale [R]) = quantize_fp8_rowwise(round_x(x[t] * scores[i]), scale_ub).
// x: [T, D] contiguous f32/bf16.
void gather_scale_quantize(cudaStream_t stream, const TensorView& x, const int32_t* ids,
                           const float* scores, const int32_t* rank, const int32_t* offsets, int k,
                           float scale_ub, fp8e4m3* a_q, float* a_scale, int32_t* perm_slot);
// gu [R, 2I] bf16 (gate | up) -> h = bf16(bf16(silu(gate)) * up) (written over the gate half),
// then (h_q [R, I] e4m3, h_scale [R]) = quantize_fp8_rowwise(h, scale_ub).
void silu_gate_quantize(cudaStream_t stream, bf16* gu, int64_t R, int64_t I, float scale_ub,
                        fp8e4m3* h_q, float* h_scale);
// out[t] = round(shared[t] + round(sum_j y[perm_slot[t * k + j]])); y [R, D] bf16; out and shared
// [T, D] contiguous, the model dtype (f32/bf16); out may alias shared.
void unpermute_add(cudaStream_t stream, const TensorView& out, const bf16* y,
                   const int32_t* perm_slot, const TensorView& shared, int k);

}  // namespace llama4::cuda::moe
