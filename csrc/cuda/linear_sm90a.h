// Host interface of the CUTLASS sm_90a bf16 GEMMs behind linear and grouped_linear (the kernels:
// cuda/linear_sm90a.cuh and cuda/grouped_linear_sm90a.cuh, one configuration per *_sm90a.cu
// file so they compile in parallel), plain C++ so the portable CUDA files can call them. Which
// configuration runs is linear_kernel's choice (llama4/linear_config.h).
//
// Both compute out = x . w^T with bf16 inputs, fp32 tensor-core accumulation and one
// round-to-nearest-even to the output type ("TN": x and w both K-contiguous).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "llama4/context.h"
#include "llama4/linear_config.h"

namespace llama4::cuda::sm90a {

// out [m, n] (contiguous, bf16 or fp32) = x [m, k] (row stride ldx) . w [n, k]^T (contiguous).
// Every pointer 16-byte aligned, ldx and k multiples of 8, n a multiple of 8 (bf16 out) or 4
// (fp32 out): the TMA rules (linear_kernel checks them before choosing a CUTLASS kernel).
struct DenseGemmBf16 {
  const void* x = nullptr;
  int64_t ldx = 0;
  const void* w = nullptr;
  void* out = nullptr;
  int m = 0, n = 0, k = 0;
};

// Runs configuration kKernel (CutlassSmall / CutlassMedium / CutlassLarge; Medium is built for
// bf16 out only) on `stream`; CUTLASS's workspace, if any, is a stream-ordered temporary of ctx.
// Throws on a GPU that is not sm_90 and on CUTLASS errors. One translation unit per instantiation.
template <LinearKernel kKernel, bool kF32Out>
void dense_gemm_bf16_config(const DenseGemmBf16& p, const Context& ctx, int device, cudaStream_t stream);

// Rows [offsets[e], offsets[e + 1]) of out [rows, n] = the same rows of x [rows, k] . w[e]^T for
// e < groups, w [groups, n, k]; everything contiguous bf16, 16-byte aligned, n and k multiples of
// 8. offsets [groups + 1] int32 stay on the device (clamped to [0, rows]).
struct GroupedGemmBf16 {
  const void* x = nullptr;
  const void* w = nullptr;
  void* out = nullptr;
  const int32_t* offsets = nullptr;
  int groups = 0;
  int64_t rows = 0;
  int n = 0, k = 0;
};

// Device scratch of configuration kSwapAB (CutlassGroupedSwapAB) or not (CutlassGrouped) with
// `groups` groups on `device`: the per-group argument arrays plus CUTLASS's own workspace.
template <bool kSwapAB>
size_t grouped_gemm_bf16_config_workspace_bytes(int device, int groups);
// Builds the per-group arguments on the device from the offsets, then runs the configuration,
// both queued on `stream`. The initialized GEMM is cached per (device, groups, workspace
// address), so a workspace kept across calls (or handed back by the context's pool) makes a call
// two launches and no host-side CUTLASS setup. One translation unit per instantiation.
template <bool kSwapAB>
void grouped_gemm_bf16_config(const GroupedGemmBf16& p, void* workspace, size_t workspace_bytes,
                              int device, cudaStream_t stream);

}  // namespace llama4::cuda::sm90a
