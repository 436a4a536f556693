// The FP8 MoE pipeline's row kernels (contracts in cuda/moe_kernels.h):
//   gather_scale_quantize  x [T, D] -> a_q [R, D] e4m3 + a_scale [R], rows grouped by expert
//   silu_gate_quantize     gu [R, 2I] bf16 -> h_q [R, I] e4m3 + h_scale [R]
//   unpermute_add          y [R, D] bf16 + shared [T, D] -> out [T, D]
// Each reproduces the CPU pipeline (cpu/moe_fp8.cpp) bit for bit: moe_permute's x * score rounded
// to the model dtype, quantize_fp8_rowwise's amax / scale_ub / clamp rules (cuda/fp8_rowwise.cuh,
// shared with cuda/quant.cu), silu_gate's roundings with exp_f32, and moe_unpermute's sum order. One block
// per row: a row is read twice (amax, then quantize) and stays in L1/L2 between the passes.
#include "cuda/common.cuh"
#include "cuda/elem.cuh"
#include "cuda/fp8_rowwise.cuh"
#include "cuda/moe_kernels.h"
#include "cuda/reduce.cuh"
#include "llama4/mathfn.h"

namespace llama4::cuda::moe {

namespace {

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    gather_scale_quantize_kernel(const T* __restrict__ x, int64_t D, int k,
                                 const int32_t* __restrict__ ids, const float* __restrict__ scores,
                                 const int32_t* __restrict__ rank, const int32_t* __restrict__ offsets,
                                 float scale_ub, fp8e4m3* __restrict__ a_q,
                                 float* __restrict__ a_scale, int32_t* __restrict__ perm_slot) {
  using E = DevElem<T>;
  __shared__ float smem[kBlockThreads / 32];
  const int64_t i = blockIdx.x;  // the pair (token i / k, choice i % k)
  const int64_t slot = int64_t(offsets[ids[i]]) + rank[i];
  const float s = scores[i];
  const T* xr = x + (i / k) * D;
  float amax = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += kBlockThreads)
    amax = MaxNanOp{}(amax, fabsf(E::round(__fmul_rn(E::load(xr[d]), s))));
  amax = row_reduce<kBlockThreads>(amax, smem, MaxNanOp{}, 0.f);
  const float inv = fp8_inverse_scale(amax, scale_ub);
  fp8e4m3* qr = a_q + slot * D;
  for (int64_t d = threadIdx.x; d < D; d += kBlockThreads)
    qr[d] = fp8_quantize(E::round(__fmul_rn(E::load(xr[d]), s)), inv);
  if (threadIdx.x == 0) {
    a_scale[slot] = __fdiv_rn(1.0f, inv);
    perm_slot[i] = int32_t(slot);
  }
}

__global__ void __launch_bounds__(kBlockThreads)
    silu_gate_quantize_kernel(bf16* __restrict__ gu, int64_t I, float scale_ub,
                              fp8e4m3* __restrict__ h_q, float* __restrict__ h_scale) {
  __shared__ float smem[kBlockThreads / 32];
  const int64_t r = blockIdx.x;
  bf16* g = gu + r * 2 * I;
  const bf16* u = g + I;
  float amax = 0.f;
  for (int64_t j = threadIdx.x; j < I; j += kBlockThreads) {
    const float gv = bf16_to_f32(g[j].bits), uv = bf16_to_f32(u[j].bits);
    const float act = round_bf16(__fdiv_rn(gv, __fadd_rn(1.0f, exp_f32(-gv))));  // SiLU rounds first
    const float h = round_bf16(__fmul_rn(act, uv));
    g[j] = bf16{f32_to_bf16(h)};  // this thread reads it back below
    amax = MaxNanOp{}(amax, fabsf(h));
  }
  amax = row_reduce<kBlockThreads>(amax, smem, MaxNanOp{}, 0.f);
  const float inv = fp8_inverse_scale(amax, scale_ub);
  for (int64_t j = threadIdx.x; j < I; j += kBlockThreads)
    h_q[r * I + j] = fp8_quantize(bf16_to_f32(g[j].bits), inv);
  if (threadIdx.x == 0) h_scale[r] = __fdiv_rn(1.0f, inv);
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    unpermute_add_kernel(T* out, const bf16* __restrict__ y, const int32_t* __restrict__ perm_slot,
                         const T* shared, int64_t T_, int64_t D, int k) {
  using E = DevElem<T>;
  const int64_t n = T_ * D, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t t = idx / D, d = idx % D;
    float routed = 0.f;
    for (int j = 0; j < k; ++j) routed = __fadd_rn(routed, bf16_to_f32(y[int64_t(perm_slot[t * k + j]) * D + d].bits));
    out[idx] = E::store(__fadd_rn(E::load(shared[idx]), E::round(routed)));
  }
}

template <typename T>
void launch_gather(cudaStream_t s, const TensorView& x, const int32_t* ids, const float* scores,
                   const int32_t* rank, const int32_t* offsets, int k, float scale_ub, fp8e4m3* a_q,
                   float* a_scale, int32_t* perm_slot) {
  const int64_t R = x.size(0) * k;
  LLAMA4_CHECK(R < (int64_t(1) << 31), "moe gather: ", R, " rows exceed the grid");
  gather_scale_quantize_kernel<T><<<unsigned(R), kBlockThreads, 0, s>>>(
      x.ptr<T>(), x.size(1), k, ids, scores, rank, offsets, scale_ub, a_q, a_scale, perm_slot);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_unpermute(cudaStream_t s, const TensorView& out, const bf16* y,
                      const int32_t* perm_slot, const TensorView& shared, int k) {
  const int64_t T_ = out.size(0), D = out.size(1);
  unpermute_add_kernel<T><<<grid_blocks(T_ * D, kBlockThreads), kBlockThreads, 0, s>>>(
      out.ptr<T>(), y, perm_slot, shared.ptr<T>(), T_, D, k);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace

void gather_scale_quantize(cudaStream_t stream, const TensorView& x, const int32_t* ids,
                           const float* scores, const int32_t* rank, const int32_t* offsets, int k,
                           float scale_ub, fp8e4m3* a_q, float* a_scale, int32_t* perm_slot) {
  LLAMA4_CUDA_DISPATCH_ACT(x.dtype, "moe gather", launch_gather, stream, x, ids, scores, rank, offsets, k,
                           scale_ub, a_q, a_scale, perm_slot);
}

void silu_gate_quantize(cudaStream_t stream, bf16* gu, int64_t R, int64_t I, float scale_ub,
                        fp8e4m3* h_q, float* h_scale) {
  LLAMA4_CHECK(R < (int64_t(1) << 31), "moe silu_gate: ", R, " rows exceed the grid");
  silu_gate_quantize_kernel<<<unsigned(R), kBlockThreads, 0, stream>>>(gu, I, scale_ub, h_q, h_scale);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

void unpermute_add(cudaStream_t stream, const TensorView& out, const bf16* y,
                   const int32_t* perm_slot, const TensorView& shared, int k) {
  LLAMA4_CUDA_DISPATCH_ACT(out.dtype, "moe unpermute", launch_unpermute, stream, out, y, perm_slot,
                           shared, k);
}

}  // namespace llama4::cuda::moe
