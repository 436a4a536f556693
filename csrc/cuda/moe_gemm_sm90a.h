// Host interface of the CUTLASS FP8 grouped GEMM (cuda/moe_gemm_sm90a.cu, compiled for sm_90a only),
// plain C++ so the portable CUDA files can call it. The GEMM element contract: llama4/moe_fp8.h.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "llama4/moe_fp8.h"

namespace llama4::cuda::sm90a {

// One grouped GEMM over E experts; every pointer is device memory on the current device.
//   a [rows, k] e4m3 and a_scale [rows]: the rows of all experts, expert e's at
//     [expert_offsets[e], expert_offsets[e + 1]) (offsets [E + 1] int32, read on the device only);
//   w [E, n, k] e4m3 and w_scale [E, n]; out [rows, n] bf16.
// k % 16 == 0, n % 8 == 0, a / w / out 16-byte aligned (TMA).
struct GroupedGemmFp8 {
  const void* a = nullptr;
  const float* a_scale = nullptr;
  const void* w = nullptr;
  const float* w_scale = nullptr;
  void* out = nullptr;
  const int32_t* expert_offsets = nullptr;
  int experts = 0;
  int64_t rows = 0;
  int n = 0;
  int k = 0;
};

// Device scratch for either configuration with `experts` groups on `device`: the per-group
// argument arrays plus CUTLASS's own workspace (TMA descriptors per SM).
size_t grouped_gemm_fp8_workspace_bytes(int device, int experts);

// Builds the per-group arguments on the device from the offsets (a one-block kernel), then runs the
// configuration `config` names (moe_gemm_config), both queued on `stream`. Throws on a GPU
// that is not sm_90 (the kernels are sm_90a SASS) and on CUTLASS errors.
void grouped_gemm_fp8(const GroupedGemmFp8& p, const MoeGemmConfig& config, void* workspace,
                      size_t workspace_bytes, int device, cudaStream_t stream);

}  // namespace llama4::cuda::sm90a
