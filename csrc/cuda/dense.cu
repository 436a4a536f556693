// CUDA dense linear layers and the residual add (contracts: cuda/dense.h).
//
// linear / grouped_linear: out = x . w^T with fp32 accumulation and one rounding to out's dtype.
// Two kernels, chosen by the number of rows:
//  - few rows (decode, M <= kGemvMaxRows): one warp per output column streams that weight row
//    once with 16-byte loads and keeps one fp32 accumulator per input row, then reduces across
//    the warp. Every weight byte is read exactly once, so the kernel runs at memory bandwidth,
//    which is what bounds a decode step;
//  - more rows (prefill): a 64x64 output tile per block, K in steps of 16 through shared memory
//    (converted to fp32 on the way in), a 4x4 register block per thread.
// Both take an optional device array of group offsets (grouped_linear, the MoE experts): group e
// owns rows [offsets[e], offsets[e+1]) and multiplies them by w[e]. The grid is sized for the
// worst case (every row in one group) and blocks past their group's rows exit at once, so the
// launch needs no host copy of the offsets.
// The sums run in a different order than the CPU's, so results agree to fp32 rounding, not bits.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/dense.h"
#include "cuda/elem.cuh"
#include "cuda/reduce.cuh"

namespace llama4::cuda {

namespace {

constexpr int64_t kGemvMaxRows = 16;
constexpr int kGemvWarps = 8;  // output columns per block of the few-rows kernel

// The rows and weight matrix of group blockIdx.z (offsets == nullptr: one group, all M rows).
struct Group {
  int64_t row0, rows;
  const void* w;
};
template <typename T>
__device__ __forceinline__ Group group_of(const int32_t* offsets, int64_t M, const T* w,
                                          int64_t w_group_stride) {
  if (offsets == nullptr) return Group{0, M, w};
  const int e = int(blockIdx.z);
  const int64_t r0 = offsets[e];
  return Group{r0, int64_t(offsets[e + 1]) - r0, w + int64_t(e) * w_group_stride};
}

// ---- few rows: a warp per output column ----------------------------------------------------------

template <typename T, typename O, int VEC>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(O* __restrict__ out, const T* __restrict__ x, int64_t ldx, const T* __restrict__ w,
                int64_t M, int64_t N, int64_t K, const int32_t* __restrict__ offsets,
                int64_t w_group_stride) {
  using E = DevElem<T>;
  const Group g = group_of(offsets, M, w, w_group_stride);
  const int lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kGemvWarps + threadIdx.x / 32;
  if (g.rows <= 0 || n >= N) return;  // no barriers below: warps may leave independently
  const T* wr = static_cast<const T*>(g.w) + n * K;
  const T* xg = x + g.row0 * ldx;
  float acc[kGemvMaxRows];
#pragma unroll
  for (int m = 0; m < kGemvMaxRows; ++m) acc[m] = 0.f;
  for (int64_t k = int64_t(lane) * VEC; k < K; k += 32 * VEC) {
    const Vec<T, VEC> wv = load_vec<VEC>(wr + k);
#pragma unroll
    for (int m = 0; m < kGemvMaxRows; ++m) {
      if (m < g.rows) {
        const Vec<T, VEC> xv = load_vec<VEC>(xg + m * ldx + k);
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc[m] = fmaf(E::load(xv.v[j]), E::load(wv.v[j]), acc[m]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kGemvMaxRows; ++m) {
    if (m < g.rows) {
      const float s = warp_reduce(acc[m], SumOp{});
      if (lane == 0) out[(g.row0 + m) * N + n] = DevElem<O>::store(s);
    }
  }
}

// ---- many rows: 64x64 tiles ----------------------------------------------------------------------

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kTileThreads = 256;

template <typename T, typename O>
__global__ void __launch_bounds__(kTileThreads)
    gemm_tile_kernel(O* __restrict__ out, const T* __restrict__ x, int64_t ldx,
                     const T* __restrict__ w, int64_t M, int64_t N, int64_t K,
                     const int32_t* __restrict__ offsets, int64_t w_group_stride) {
  using E = DevElem<T>;
  // [k][row] so the inner loop reads 4 consecutive rows (and columns) per thread; +4 keeps rows
  // 16-byte aligned and spreads the transposing stores over the banks.
  __shared__ float xs[kTileK][kTileM + 4];
  __shared__ float ws[kTileK][kTileN + 4];
  const Group g = group_of(offsets, M, w, w_group_stride);
  const int64_t m0 = int64_t(blockIdx.y) * kTileM, n0 = int64_t(blockIdx.x) * kTileN;
  if (m0 >= g.rows) return;  // uniform over the block, before any barrier
  const T* wg = static_cast<const T*>(g.w);
  const T* xg = x + g.row0 * ldx;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;  // outputs rows ty*4.., cols tx*4..
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
    for (int i = threadIdx.x; i < kTileM * kTileK; i += kTileThreads) {
      const int r = i / kTileK, c = i % kTileK;
      const int64_t gr = m0 + r, gk = k0 + c;
      xs[c][r] = (gr < g.rows && gk < K) ? E::load(xg[gr * ldx + gk]) : 0.f;
      const int64_t gn = n0 + r;
      ws[c][r] = (gn < N && gk < K) ? E::load(wg[gn * K + gk]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = xs[kk][ty * 4 + i];
        b[i] = ws[kk][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = m0 + ty * 4 + i;
    if (r >= g.rows) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = n0 + tx * 4 + j;
      if (c < N) out[(g.row0 + r) * N + c] = DevElem<O>::store(acc[i][j]);
    }
  }
}

// ---- launch --------------------------------------------------------------------------------------

// max_group_rows: the most rows one group can have (M, or all R rows for grouped calls).
template <typename T, typename O>
void launch_linear(cudaStream_t s, O* out, const T* x, int64_t ldx, const T* w, int64_t M,
                   int64_t N, int64_t K, const int32_t* offsets, int64_t groups,
                   int64_t max_group_rows) {
  LLAMA4_CHECK(groups >= 1 && groups <= 65535, "linear: ", groups, " groups exceed the grid's z limit");
  const int64_t w_group_stride = N * K;
  if (max_group_rows <= kGemvMaxRows) {
    constexpr int kVec = kVec16<T>;
    const bool vec_ok = K % kVec == 0 && ldx % kVec == 0 && is_aligned(x, 16) && is_aligned(w, 16);
    const dim3 grid(unsigned(ceil_div(N, kGemvWarps)), 1, unsigned(groups));
    LLAMA4_CHECK(grid.x <= 0x7fffffffu, "linear: N = ", N, " is too large");
    if (vec_ok) {
      gemv_kernel<T, O, kVec><<<grid, kGemvWarps * 32, 0, s>>>(out, x, ldx, w, M, N, K, offsets,
                                                                w_group_stride);
    } else {
      gemv_kernel<T, O, 1><<<grid, kGemvWarps * 32, 0, s>>>(out, x, ldx, w, M, N, K, offsets,
                                                            w_group_stride);
    }
  } else {
    const int64_t tiles_m = ceil_div(max_group_rows, kTileM);
    LLAMA4_CHECK(tiles_m <= 65535, "linear: ", max_group_rows, " rows exceed the grid's y limit (",
                 65535 * kTileM, ")");
    const dim3 grid(unsigned(ceil_div(N, kTileN)), unsigned(tiles_m), unsigned(groups));
    gemm_tile_kernel<T, O><<<grid, kTileThreads, 0, s>>>(out, x, ldx, w, M, N, K, offsets,
                                                          w_group_stride);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

void dispatch_linear(cudaStream_t s, const TensorView& out, const TensorView& x, const TensorView& w,
                     const int32_t* offsets, int64_t groups) {
  const int64_t M = x.size(0), K = x.size(1), N = out.size(1), ldx = x.stride(0);
  if (x.dtype == DType::F32) {
    launch_linear<float, float>(s, out.ptr<float>(), x.ptr<float>(), ldx, w.ptr<float>(), M, N, K,
                                offsets, groups, M);
  } else if (out.dtype == DType::F32) {
    launch_linear<bf16, float>(s, out.ptr<float>(), x.ptr<bf16>(), ldx, w.ptr<bf16>(), M, N, K,
                               offsets, groups, M);
  } else {
    launch_linear<bf16, bf16>(s, out.ptr<bf16>(), x.ptr<bf16>(), ldx, w.ptr<bf16>(), M, N, K,
                              offsets, groups, M);
  }
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    add_kernel(T* __restrict__ out, const T* a, const T* b, int64_t n) {
  using E = DevElem<T>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = E::store(__fadd_rn(E::load(a[i]), E::load(b[i])));  // the CPU's one rounding
}

template <typename T>
void launch_add(cudaStream_t s, const TensorView& out, const TensorView& a, const TensorView& b) {
  const int64_t n = out.numel();
  add_kernel<T><<<grid_blocks(n, kBlockThreads), kBlockThreads, 0, s>>>(out.ptr<T>(), a.ptr<T>(),
                                                                         b.ptr<T>(), n);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace

void linear(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& w) {
  const OpScope scope(ctx);
  dispatch_linear(scope.stream, out, x, w, nullptr, 1);
}

void grouped_linear(const Context& ctx, const TensorView& out, const TensorView& x,
                    const TensorView& w, const TensorView& offsets) {
  const OpScope scope(ctx);
  dispatch_linear(scope.stream, out, x, w, offsets.ptr<int32_t>(), w.size(0));
}

void add(const Context& ctx, const TensorView& out, const TensorView& a, const TensorView& b) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(out.dtype, "add", launch_add, scope.stream, out, a, b);
}

}  // namespace llama4::cuda
