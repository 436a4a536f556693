// The MoE router and the device-side grouping of (token, choice) pairs by expert (contracts in
// cuda/moe_kernels.h). Bit-identical to cpu/moe_routing.cpp: the same expert order (largest logit,
// lower index on ties, a NaN only when every candidate is NaN: a total order, so the warp's tree
// reduction picks the CPU's scan result), the same sigmoid (exp_f32 of llama4/mathfn.h, _rn
// arithmetic), and the same stable permutation. Nothing is read back to the host: the counts and
// offsets stay on the device for the gather and the grouped GEMM's argument builder.
#include <cub/block/block_scan.cuh>

#include "cuda/common.cuh"
#include "cuda/elem.cuh"
#include "cuda/moe_kernels.h"
#include "llama4/mathfn.h"

namespace llama4::cuda::moe {

namespace {

constexpr int kRankThreads = 256;

struct Candidate {
  float v;
  int e;  // -1: none
};

// Whether a is chosen before b (e >= 0 for both).
__device__ __forceinline__ bool before(const Candidate& a, const Candidate& b) {
  const bool a_num = a.v == a.v, b_num = b.v == b.v;
  if (a_num != b_num) return a_num;
  if (a_num && a.v != b.v) return a.v > b.v;
  return a.e < b.e;
}

__device__ __forceinline__ Candidate pick(const Candidate& a, const Candidate& b) {
  if (b.e < 0) return a;
  if (a.e < 0) return b;
  return before(b, a) ? b : a;
}

// The k choices of one token (row = its E logits), computed by a whole warp: each lane scans
// its experts in ascending order, then a butterfly reduction; every lane ends with the same choice.
template <typename S>
__device__ __forceinline__ void route_token(const float* row, int E, int k, int lane,
                                            int32_t* ids, float* scores) {
  int chosen[kMaxTopK];
  for (int j = 0; j < k; ++j) {
    Candidate best{0.f, -1};
    for (int e = lane; e < E; e += 32) {
      bool taken = false;
      for (int q = 0; q < j; ++q) taken |= chosen[q] == e;
      if (!taken) best = pick(best, Candidate{row[e], e});
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const Candidate other{__shfl_xor_sync(0xffffffffu, best.v, o), __shfl_xor_sync(0xffffffffu, best.e, o)};
      best = pick(best, other);
    }
    chosen[j] = best.e;  // the same in every lane: pick is a total order
    if (lane == 0) {
      ids[j] = best.e;
      scores[j] = DevElem<S>::round(__fdiv_rn(1.0f, __fadd_rn(1.0f, exp_f32(-best.v))));
    }
  }
}

// One warp per token; S: the scores' dtype (the model dtype), rounded to but stored as float.
template <typename S>
__global__ void __launch_bounds__(kBlockThreads)
    route_kernel(const float* __restrict__ logits, int64_t T, int E, int k, int32_t* __restrict__ ids,
                 float* __restrict__ scores) {
  constexpr int kWarps = kBlockThreads / 32;
  // Whole warps iterate together (the shuffles need all 32 lanes).
  for (int64_t t = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32; t < T; t += int64_t(gridDim.x) * kWarps)
    route_token<S>(logits + t * E, E, k, threadIdx.x % 32, ids + t * k, scores + t * k);
}

// One block per expert scans all pairs in order: the rank of a pair is the number of earlier
// pairs with the same expert. O(E * R) reads of a small int array, all from L2.
__global__ void __launch_bounds__(kRankThreads)
    expert_rank_kernel(const int32_t* __restrict__ ids, int64_t R, int32_t* __restrict__ rank,
                       int32_t* __restrict__ counts) {
  using Scan = cub::BlockScan<int, kRankThreads>;
  __shared__ typename Scan::TempStorage tmp;
  const int e = blockIdx.x;
  int running = 0;
  for (int64_t base = 0; base < R; base += kRankThreads) {
    const int64_t i = base + threadIdx.x;
    const int mine = (i < R && ids[i] == e) ? 1 : 0;
    int before_me = 0, total = 0;
    Scan(tmp).ExclusiveSum(mine, before_me, total);
    if (mine) rank[i] = running + before_me;
    running += total;
    __syncthreads();  // tmp is reused by the next chunk
  }
  if (threadIdx.x == 0) counts[e] = running;
}

__global__ void __launch_bounds__(kMaxExperts)
    expert_offsets_kernel(const int32_t* __restrict__ counts, int E, int32_t* __restrict__ offsets) {
  using Scan = cub::BlockScan<int, kMaxExperts>;
  __shared__ typename Scan::TempStorage tmp;
  const int c = int(threadIdx.x) < E ? counts[threadIdx.x] : 0;
  int start = 0, total = 0;
  Scan(tmp).ExclusiveSum(c, start, total);
  if (int(threadIdx.x) < E) offsets[threadIdx.x] = start;
  if (threadIdx.x == 0) offsets[E] = total;
}

template <typename S>
void launch_route(cudaStream_t s, const float* logits, int64_t T, int E, int k, int32_t* ids,
                  float* scores) {
  route_kernel<S><<<grid_blocks(T, kBlockThreads / 32), kBlockThreads, 0, s>>>(logits, T, E, k, ids,
                                                                            scores);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace

void route(cudaStream_t stream, const float* logits, int64_t T, int E, int k, DType score_dtype, int32_t* ids,
           float* scores) {
  LLAMA4_CHECK(k >= 1 && k <= kMaxTopK && k <= E, "moe route: top_k ", k, " outside [1, min(",
               kMaxTopK, ", E = ", E, ")]");
  LLAMA4_CUDA_DISPATCH_ACT(score_dtype, "moe route", launch_route, stream, logits, T, E, k, ids, scores);
}

void expert_ranks(cudaStream_t stream, const int32_t* ids, int64_t R, int E, int32_t* rank,
                  int32_t* counts) {
  expert_rank_kernel<<<E, kRankThreads, 0, stream>>>(ids, R, rank, counts);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

void expert_offsets(cudaStream_t stream, const int32_t* counts, int E, int32_t* offsets) {
  LLAMA4_CHECK(E >= 1 && E <= kMaxExperts, "moe offsets: E = ", E, " outside [1, ", kMaxExperts, "]");
  expert_offsets_kernel<<<1, kMaxExperts, 0, stream>>>(counts, E, offsets);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace llama4::cuda::moe
