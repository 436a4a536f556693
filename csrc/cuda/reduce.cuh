// Reductions over the threads that share one row in the row kernels (RMSNorm, FP8 quantize):
// ROW_THREADS = 32 reduces within a warp with shuffles; ROW_THREADS = blockDim.x (a multiple of
// 32, at most 1024) adds a pass through shared memory. Every participating thread receives the
// same bits: an xor butterfly combines the same pairs in every lane, and op is commutative.
#pragma once

namespace llama4::cuda {

struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
// Maximum that propagates NaN (fmaxf would drop it): any NaN operand gives NaN. Commutative and
// associative over the row, so the tree order does not change the result.
struct MaxNanOp {
  __device__ __forceinline__ float operator()(float a, float b) const {
    return a != a ? a : (b != b ? b : fmaxf(a, b));
  }
};

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// smem: at least ROW_THREADS / 32 floats. With ROW_THREADS > 32 every thread of the block must
// call this (it has barriers), and smem may be reused right after it returns.
template <int ROW_THREADS, typename Op>
__device__ __forceinline__ float row_reduce(float v, float* smem, Op op, float identity) {
  v = warp_reduce(v, op);
  if constexpr (ROW_THREADS > 32) {
    constexpr int kWarps = ROW_THREADS / 32;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    v = warp_reduce(lane < kWarps ? smem[lane] : identity, op);
    __syncthreads();
  }
  return v;
}

}  // namespace llama4::cuda
