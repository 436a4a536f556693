// Host interface of the CUTLASS INT4 (W4A16) grouped GEMM (cuda/moe_int4_gemm_sm90a.cu, compiled
// for sm_90a only), plain C++ so the portable CUDA files can call it. Element contract:
// llama4/moe_int4_config.h ("the CUTLASS kernel").
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace llama4::cuda::sm90a {

// One grouped GEMM over E experts; every pointer is device memory on the current device.
//   x [rows, k] bf16: the rows of all experts, expert e's at [expert_offsets[e], expert_offsets[e+1])
//     (offsets [E + 1] int32, read on the device only, clamped to [0, rows]);
//   w [E, n, k / 2] bytes: two's-complement int4, k = 2j in the low nibble of byte j (cutlass::int4b_t);
//   w_scale_t [E, k / group, n] bf16: the scales TRANSPOSED (n contiguous), as CUTLASS's mixed-input
//     mainloop reads them (cuda/moe_int4.cu writes them from the op's [E, n, k / group]);
//   out [rows, n] bf16.
// n % 8 == 0, group % 64 == 0 (a multiple of the 64-deep K tile), k % group == 0; x / w / out /
// w_scale_t 16-byte aligned (TMA).
struct GroupedGemmInt4 {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* w_scale_t = nullptr;
  void* out = nullptr;
  const int32_t* expert_offsets = nullptr;
  int experts = 0;
  int64_t rows = 0;
  int n = 0;
  int k = 0;
  int group = 0;
};

// K depth of the CUTLASS tile: the group size must be a multiple of it.
constexpr int kInt4GemmTileK = 64;

// Device scratch for `experts` groups on `device`: the per-group argument arrays plus CUTLASS's
// own workspace (three TMA descriptors per SM).
size_t grouped_gemm_int4_workspace_bytes(int device, int experts);

// Builds the per-group arguments on the device from the offsets (a one-block kernel), then runs the
// kernel, both queued on `stream`. Throws on a GPU that is not sm_90 and on CUTLASS errors.
void grouped_gemm_int4(const GroupedGemmInt4& p, void* workspace, size_t workspace_bytes, int device,
                       cudaStream_t stream);

}  // namespace llama4::cuda::sm90a
