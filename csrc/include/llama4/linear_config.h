// The kernel choice of the CUDA linear and grouped_linear ops: a pure host function of the
// problem, built on every backend so a CPU test can check it and anyone can print it.
//
// Kernels (csrc/cuda/dense.cu and the CUTLASS *_sm90a.cu files):
//   Gemv      M <= kLinearGemvMaxRows (decode): one warp per output column streams that weight
//             row once (16-byte loads) for all M rows; runs at HBM bandwidth. Any arch and dtype.
//   Tiled     the portable fallback for larger M: a 64x64 SIMT tile kernel in fp32 (sm_80, fp32
//             activations, strides or addresses TMA cannot take).
//   Cutlass*  CUTLASS 3.x sm_90a kernels (TMA loads, wgmma, fp32 accumulation), bf16 x bf16 ->
//             bf16 or fp32 (router, lm_head). CUTLASS rather than cuBLASLt: header-only from the
//             nvidia-cutlass wheel (no runtime library to ship or dlopen, `import llama4_native`
//             needs no driver), the same toolchain as the FP8 / INT4 grouped GEMMs, and the
//             ptr-array grouped GEMM the MoE experts need, which cuBLASLt lacks for device-side
//             group sizes. Tiles by M as CUTLASS's profiler and vLLM's sm_90 dispatch choose them
//             (K tile 64 bf16 = 128 bytes, one TMA swizzle atom):
//     CutlassSmall    16 < M <= 64:  64x64x64, cluster 1x8 (the 64-row x tile multicast to 8
//                     CTAs along N), non-persistent warp-specialized: weight-bandwidth bound, so
//                     the most CTAs streaming weights;
//     CutlassMedium   64 < M <= 128 (bf16 out): 64x128x64 ping-pong, cluster 2x1;
//     CutlassLarge    otherwise: 128x128x64 ping-pong, cluster 2x1 (the w tile multicast to the
//                     2 CTAs along M), persistent: one consumer warp group's epilogue overlaps
//                     the other's mainloop;
//     CutlassGrouped        grouped_linear, prefill: ptr-array cooperative 128x128x64, cluster 1x2;
//     CutlassGroupedSwapAB  grouped_linear, few rows per group: ptr-array ping-pong 64x32x64
//                     computing out^T = w . x^T (the weights fill the 64-row tile), as the FP8
//                     grouped GEMM does (kMoeSwapAbMaxRowsPerExpert).
// Every kernel computes each output as one fp32 dot product rounded once to the output dtype;
// only the summation order differs between them (and from the CPU).
#pragma once
#include <cstdint>

#include "llama4/tensor.h"

namespace llama4 {

enum class LinearKernel {
  Gemv,
  Tiled,
  CutlassSmall,
  CutlassMedium,
  CutlassLarge,
  CutlassGrouped,
  CutlassGroupedSwapAB,
};

// "gemv", "tiled", "cutlass_64x64", "cutlass_64x128", "cutlass_128x128",
// "cutlass_grouped_128x128", "cutlass_grouped_swap_ab_64x32".
const char* linear_kernel_name(LinearKernel kernel);

// Rows up to which the warp-per-column kernel is used (its per-row accumulators live in registers).
constexpr int64_t kLinearGemvMaxRows = 16;
// Rows up to which the small / medium CUTLASS tiles are used.
constexpr int64_t kLinearSmallMaxRows = 64;
constexpr int64_t kLinearMediumMaxRows = 128;

struct LinearProblem {
  int arch = 0;                     // compute capability major * 10 + minor of the device (90: H100)
  DType x_dtype = DType::BF16;      // x and w
  DType out_dtype = DType::BF16;
  int64_t m = 0, n = 0, k = 0;      // grouped: m = the rows of all groups
  int64_t groups = 0;               // 0: linear; >= 1: grouped_linear over this many groups
  int64_t ldx = 0;                  // x's row stride in elements (>= k)
  bool aligned16 = false;           // x, w and out all start on a 16-byte boundary
};

// The kernel for `p` on a CUDA device:
//   m <= kLinearGemvMaxRows                                          -> Gemv
//   CUTLASS-eligible (arch 90, bf16 x, bf16 out or fp32 out for linear, k, ldx and n (n % 4 for
//   fp32 out) multiples of 8 elements, aligned16, m / n / k within int32):
//     linear:  m <= 64 -> CutlassSmall; m <= 128 and bf16 out -> CutlassMedium; else CutlassLarge
//     grouped: ceil(m / min(m, groups)) <= kMoeSwapAbMaxRowsPerExpert -> CutlassGroupedSwapAB,
//              else CutlassGrouped
//   otherwise                                                        -> Tiled
// Throws ValueError on negative sizes. Every kernel computes every shape it is given; the rule
// only affects speed.
LinearKernel linear_kernel(const LinearProblem& p);

}  // namespace llama4
