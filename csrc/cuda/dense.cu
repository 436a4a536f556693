// CUDA dense linear layers and the residual add (contracts: cuda/dense.h).
//
// linear / grouped_linear: out = x . w^T with fp32 accumulation and one rounding to out's dtype.
// The kernel is linear_kernel's choice (llama4/linear_config.h, a pure host rule):
//  - few rows (decode, M <= kLinearGemvMaxRows): one warp per output column streams that weight
//    row once with 16-byte loads and keeps one fp32 accumulator per input row, then reduces across
//    the warp. Every weight byte is read exactly once, so the kernel runs at memory bandwidth,
//    which is what bounds a decode step;
//  - more rows, bf16 on an H100/H200 with TMA-compatible strides: the CUTLASS sm_90a GEMMs
//    (cuda/linear_sm90a.cuh, cuda/grouped_linear_sm90a.cuh: wgmma tensor cores fed by TMA);
//  - more rows otherwise (sm_80, fp32 activations, unaligned views): a 64x64 output tile per
//    block, K in steps of 16 through shared memory (converted to fp32 on the way in), a 4x4
//    register block per thread.
// The SIMT kernels take an optional device array of group offsets (grouped_linear, the MoE
// experts): group e owns rows [offsets[e], offsets[e+1]) and multiplies them by w[e]. The grid is
// sized for the worst case (every row in one group) and blocks past their group's rows exit at
// once, so the launch needs no host copy of the offsets (the CUTLASS grouped GEMM builds its
// per-group arguments on the device for the same reason).
// The sums run in a different order than the CPU's, so results agree to fp32 rounding, not bits.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/dense.h"
#include "cuda/elem.cuh"
#include "cuda/linear_sm90a.h"
#include "cuda/reduce.cuh"
#include "llama4/linear_config.h"

namespace llama4::cuda {

namespace {

constexpr int64_t kGemvMaxRows = kLinearGemvMaxRows;
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

// The SIMT kernels (gemv: M <= kGemvMaxRows, else tiled). Every group may hold all M rows.
template <typename T, typename O>
void launch_linear(cudaStream_t s, bool gemv, O* out, const T* x, int64_t ldx, const T* w, int64_t M,
                   int64_t N, int64_t K, const int32_t* offsets, int64_t groups) {
  LLAMA4_CHECK(groups >= 1 && groups <= 65535, "linear: ", groups, " groups exceed the grid's z limit");
  const int64_t w_group_stride = N * K;
  if (gemv) {
    LLAMA4_CHECK(M <= kGemvMaxRows, "linear: the gemv kernel takes at most ", kGemvMaxRows, " rows");
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
    const int64_t tiles_m = ceil_div(M, kTileM);
    LLAMA4_CHECK(tiles_m <= 65535, "linear: ", M, " rows exceed the grid's y limit (",
                 65535 * kTileM, ")");
    const dim3 grid(unsigned(ceil_div(N, kTileN)), unsigned(tiles_m), unsigned(groups));
    gemm_tile_kernel<T, O><<<grid, kTileThreads, 0, s>>>(out, x, ldx, w, M, N, K, offsets,
                                                          w_group_stride);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

int arch_of(int device) {
  int major = 0, minor = 0;
  LLAMA4_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  LLAMA4_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}

LinearKernel choose_kernel(const TensorView& out, const TensorView& x, const TensorView& w,
                           int64_t groups) {
  LinearProblem p;
  p.arch = arch_of(x.device.index);
  p.x_dtype = x.dtype;
  p.out_dtype = out.dtype;
  p.m = x.size(0);
  p.n = out.size(1);
  p.k = x.size(1);
  p.groups = groups;
  p.ldx = x.stride(0);
  p.aligned16 = is_aligned(x.data, 16) && is_aligned(w.data, 16) && is_aligned(out.data, 16);
  return linear_kernel(p);
}

void run_simt(cudaStream_t s, LinearKernel kernel, const TensorView& out, const TensorView& x,
              const TensorView& w, const int32_t* offsets, int64_t groups) {
  const int64_t M = x.size(0), K = x.size(1), N = out.size(1), ldx = x.stride(0);
  const bool gemv = kernel == LinearKernel::Gemv;
  if (x.dtype == DType::F32) {
    launch_linear<float, float>(s, gemv, out.ptr<float>(), x.ptr<float>(), ldx, w.ptr<float>(), M, N,
                                K, offsets, groups);
  } else if (out.dtype == DType::F32) {
    launch_linear<bf16, float>(s, gemv, out.ptr<float>(), x.ptr<bf16>(), ldx, w.ptr<bf16>(), M, N, K,
                               offsets, groups);
  } else {
    launch_linear<bf16, bf16>(s, gemv, out.ptr<bf16>(), x.ptr<bf16>(), ldx, w.ptr<bf16>(), M, N, K,
                              offsets, groups);
  }
}

void run_cutlass_dense(const Context& ctx, cudaStream_t s, LinearKernel kernel, const TensorView& out,
                       const TensorView& x, const TensorView& w) {
  sm90a::DenseGemmBf16 p;
  p.x = x.data;
  p.ldx = x.stride(0);
  p.w = w.data;
  p.out = out.data;
  p.m = int(x.size(0));
  p.n = int(out.size(1));
  p.k = int(x.size(1));
  const int device = x.device.index;
  const bool f32 = out.dtype == DType::F32;
  switch (kernel) {
    case LinearKernel::CutlassSmall:
      if (f32) sm90a::dense_gemm_bf16_config<LinearKernel::CutlassSmall, true>(p, ctx, device, s);
      else sm90a::dense_gemm_bf16_config<LinearKernel::CutlassSmall, false>(p, ctx, device, s);
      return;
    case LinearKernel::CutlassMedium:
      LLAMA4_CHECK(!f32, "linear: ", linear_kernel_name(kernel), " is built for bf16 output only");
      sm90a::dense_gemm_bf16_config<LinearKernel::CutlassMedium, false>(p, ctx, device, s);
      return;
    case LinearKernel::CutlassLarge:
      if (f32) sm90a::dense_gemm_bf16_config<LinearKernel::CutlassLarge, true>(p, ctx, device, s);
      else sm90a::dense_gemm_bf16_config<LinearKernel::CutlassLarge, false>(p, ctx, device, s);
      return;
    default: LLAMA4_CHECK(false, "linear: ", linear_kernel_name(kernel), " is not a dense CUTLASS kernel");
  }
}

void run_cutlass_grouped(const Context& ctx, cudaStream_t s, LinearKernel kernel, const TensorView& out,
                         const TensorView& x, const TensorView& w, const TensorView& offsets) {
  sm90a::GroupedGemmBf16 p;
  p.x = x.data;
  p.w = w.data;
  p.out = out.data;
  p.offsets = offsets.ptr<int32_t>();
  p.groups = int(w.size(0));
  p.rows = x.size(0);
  p.n = int(w.size(1));
  p.k = int(w.size(2));
  const int device = x.device.index;
  const bool swap = kernel == LinearKernel::CutlassGroupedSwapAB;
  LLAMA4_CHECK(swap || kernel == LinearKernel::CutlassGrouped, "grouped_linear: ",
               linear_kernel_name(kernel), " is not a grouped CUTLASS kernel");
  const size_t bytes = swap ? sm90a::grouped_gemm_bf16_config_workspace_bytes<true>(device, p.groups)
                            : sm90a::grouped_gemm_bf16_config_workspace_bytes<false>(device, p.groups);
  // A stream-ordered temporary: the pool mostly hands the same block back, which keeps the
  // CUTLASS setup cached (cuda/cutlass_sm90a.cuh).
  const Tensor ws = ctx.empty({int64_t(bytes)}, DType::U8);
  if (swap) sm90a::grouped_gemm_bf16_config<true>(p, ws.data(), bytes, device, s);
  else sm90a::grouped_gemm_bf16_config<false>(p, ws.data(), bytes, device, s);
}

bool is_cutlass(LinearKernel k) { return k != LinearKernel::Gemv && k != LinearKernel::Tiled; }

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
  const LinearKernel kernel = choose_kernel(out, x, w, 0);
  if (is_cutlass(kernel)) run_cutlass_dense(ctx, scope.stream, kernel, out, x, w);
  else run_simt(scope.stream, kernel, out, x, w, nullptr, 1);
}

void grouped_linear(const Context& ctx, const TensorView& out, const TensorView& x,
                    const TensorView& w, const TensorView& offsets) {
  const OpScope scope(ctx);
  const LinearKernel kernel = choose_kernel(out, x, w, w.size(0));
  if (is_cutlass(kernel)) run_cutlass_grouped(ctx, scope.stream, kernel, out, x, w, offsets);
  else run_simt(scope.stream, kernel, out, x, w, offsets.ptr<int32_t>(), w.size(0));
}

void add(const Context& ctx, const TensorView& out, const TensorView& a, const TensorView& b) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(out.dtype, "add", launch_add, scope.stream, out, a, b);
}

}  // namespace llama4::cuda
