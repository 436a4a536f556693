// CUDA MoE routing ops (contracts: cuda/moe_routing.h). The router and the expert ranks/offsets
// are the kernels of cuda/moe_route.cu; this file adds the bf16/fp32 gather (expert inputs scaled
// by the router score) and the per-token sum of the expert outputs.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/elem.cuh"
#include "cuda/moe_kernels.h"
#include "cuda/moe_routing.h"
#include "cuda/quant.h"

namespace llama4::cuda {

namespace {

// One block per (token, choice) pair i: its row slot = offsets[ids[i]] + rank[i];
// x_perm[slot] = round(x[t] * score[i]) (the CPU's product and rounding).
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    gather_kernel(T* __restrict__ x_perm, int32_t* __restrict__ perm_token,
                  int32_t* __restrict__ perm_slot, const T* __restrict__ x,
                  const int32_t* __restrict__ ids, const T* __restrict__ scores,
                  const int32_t* __restrict__ rank, const int32_t* __restrict__ offsets, int64_t R,
                  int64_t k, int64_t D, int E) {
  using El = DevElem<T>;
  for (int64_t i = blockIdx.x; i < R; i += gridDim.x) {
    const int e = ids[i];
    if (e < 0 || e >= E) continue;  // uniform over the block
    const int64_t t = i / k, slot = int64_t(offsets[e]) + rank[i];
    if (threadIdx.x == 0) {
      perm_slot[i] = int32_t(slot);
      perm_token[slot] = int32_t(t);
    }
    const float s = El::load(scores[i]);
    for (int64_t c = threadIdx.x; c < D; c += blockDim.x)
      x_perm[slot * D + c] = El::store(__fmul_rn(El::load(x[t * D + c]), s));
  }
}

// out[t, c] = round(shared[t, c] + round(sum_j y[perm_slot[t k + j], c])), j in order.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    unpermute_kernel(T* out, const T* __restrict__ y, const int32_t* __restrict__ perm_slot,
                     const T* shared, int64_t Tn, int64_t k, int64_t D) {
  using El = DevElem<T>;
  const int64_t n = Tn * D;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / D, c = i % D;
    float routed = 0.f;
    for (int64_t j = 0; j < k; ++j)
      routed = __fadd_rn(routed, El::load(y[int64_t(perm_slot[t * k + j]) * D + c]));
    out[i] = El::store(__fadd_rn(El::load(shared[i]), El::round(routed)));
  }
}

// Expert parallelism: own experts renumbered from 0, the others sent to group `count`.
__global__ void __launch_bounds__(kBlockThreads)
    localize_kernel(int32_t* ids, int64_t n, int64_t first, int64_t count) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t local = int64_t(ids[i]) - first;
    ids[i] = int32_t(local >= 0 && local < count ? local : count);
  }
}

template <typename T>
void launch_gather(cudaStream_t s, const TensorView& x_perm, const TensorView& perm_token,
                   const TensorView& perm_slot, const TensorView& x, const TensorView& ids,
                   const TensorView& scores, const int32_t* rank, const int32_t* offsets, int E) {
  const int64_t R = ids.numel(), k = ids.size(1), D = x.size(1);
  gather_kernel<T><<<grid_blocks(R, 1), kBlockThreads, 0, s>>>(
      x_perm.ptr<T>(), perm_token.ptr<int32_t>(), perm_slot.ptr<int32_t>(), x.ptr<T>(),
      ids.ptr<int32_t>(), scores.ptr<T>(), rank, offsets, R, k, D, E);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_unpermute(cudaStream_t s, const TensorView& out, const TensorView& y,
                      const TensorView& perm_slot, const TensorView& shared) {
  const int64_t Tn = out.size(0), D = out.size(1), k = perm_slot.size(0) / Tn;
  unpermute_kernel<T><<<grid_blocks(Tn * D, kBlockThreads), kBlockThreads, 0, s>>>(
      out.ptr<T>(), y.ptr<T>(), perm_slot.ptr<int32_t>(), shared.ptr<T>(), Tn, k, D);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace

void moe_route(const Context& ctx, const TensorView& topk_ids, const TensorView& topk_scores,
               const TensorView& logits) {
  const OpScope scope(ctx);
  const int64_t Tn = logits.size(0), E = logits.size(1), k = topk_ids.size(1);
  LLAMA4_CHECK_ARG(E <= moe::kMaxExperts && k <= moe::kMaxTopK, "moe_route: the CUDA router supports up to ",
                   moe::kMaxExperts, " experts and top_k <= ", moe::kMaxTopK, ", got E = ", E,
                   ", top_k = ", k);
  Tensor wide;  // fp32 logits: the widening is exact, so the choice is the CPU's
  const float* lp = nullptr;
  if (logits.dtype == DType::F32) {
    lp = logits.ptr<float>();
  } else {
    wide = ctx.empty(logits.sizes(), DType::F32);
    cuda::cast(ctx, wide, logits);
    lp = wide.ptr<float>();
  }
  if (topk_scores.dtype == DType::F32) {
    moe::route(scope.stream, lp, Tn, int(E), int(k), DType::F32, topk_ids.ptr<int32_t>(),
               topk_scores.ptr<float>());
    return;
  }
  // The router rounds each score to the scores' dtype but stores floats: narrowing is exact.
  Tensor f = ctx.empty(topk_scores.sizes(), DType::F32);
  moe::route(scope.stream, lp, Tn, int(E), int(k), topk_scores.dtype, topk_ids.ptr<int32_t>(),
             f.ptr<float>());
  cuda::cast(ctx, topk_scores, f);
}

void moe_permute(const Context& ctx, const TensorView& x_perm, const TensorView& perm_token,
                 const TensorView& perm_slot, const TensorView& expert_offsets, const TensorView& x,
                 const TensorView& topk_ids, const TensorView& topk_scores) {
  const OpScope scope(ctx);
  const int64_t E = expert_offsets.size(0) - 1, R = topk_ids.numel();
  LLAMA4_CHECK_ARG(E <= moe::kMaxExperts, "moe_permute: the CUDA kernels support up to ",
                   moe::kMaxExperts, " experts, got ", E);
  Tensor rank = ctx.empty({R}, DType::I32), counts = ctx.empty({E}, DType::I32);
  moe::expert_ranks(scope.stream, topk_ids.ptr<int32_t>(), R, int(E), rank.ptr<int32_t>(),
                    counts.ptr<int32_t>());
  moe::expert_offsets(scope.stream, counts.ptr<int32_t>(), int(E), expert_offsets.ptr<int32_t>());
  LLAMA4_CUDA_DISPATCH_ACT(x.dtype, "moe_permute", launch_gather, scope.stream, x_perm, perm_token,
                           perm_slot, x, topk_ids, topk_scores, rank.ptr<int32_t>(),
                           expert_offsets.ptr<int32_t>(), int(E));
}

void moe_localize(const Context& ctx, const TensorView& topk_ids, int64_t first, int64_t count) {
  const OpScope scope(ctx);
  const int64_t n = topk_ids.numel();
  localize_kernel<<<grid_blocks(n, kBlockThreads), kBlockThreads, 0, scope.stream>>>(topk_ids.ptr<int32_t>(), n,
                                                                                      first, count);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

void moe_unpermute(const Context& ctx, const TensorView& out, const TensorView& y_perm,
                   const TensorView& perm_slot, const TensorView& shared) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(out.dtype, "moe_unpermute", launch_unpermute, scope.stream, out, y_perm,
                           perm_slot, shared);
}

}  // namespace llama4::cuda
