// Launchers of the INT4 grouped GEMM's own CUDA kernels (cuda/moe_int4_gemv.cu), used by
// cuda/moe_int4.cu. Pointers are device memory on the current device; every launcher queues its
// kernel on `stream` and reads nothing back to the host. Layouts: llama4/moe_int4.h.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace llama4::cuda::int4 {

// One grouped product over E experts: x [rows, k] bf16, w [E, n, k / 2] int4 pairs (low nibble =
// even k), w_scale [E, n, k / group] bf16, out [rows, n] bf16; expert e owns rows
// [offsets[e], offsets[e + 1]) (clamped to [0, rows] on the device; rows from offsets[E] on are not
// written). k % 32 == 0, group % 32 == 0, k % group == 0, x and w 16-byte aligned.
struct GroupedInt4 {
  const void* x = nullptr;
  const uint8_t* w = nullptr;
  const void* w_scale = nullptr;
  void* out = nullptr;
  const int32_t* expert_offsets = nullptr;
  int experts = 0;
  int64_t rows = 0;
  int n = 0;
  int k = 0;
  int group = 0;
};

// The decode kernel (MoeInt4Kernel::Gemv): the op's formula with fp32 sums.
void grouped_gemv(cudaStream_t stream, const GroupedInt4& p, int device);

// w_scale_t [E, k / group, n] = w_scale [E, n, k / group] transposed, for the experts that own
// rows (CUTLASS reads the scales n-contiguous); the others are left unwritten.
void transpose_scales(cudaStream_t stream, const GroupedInt4& p, void* w_scale_t);

}  // namespace llama4::cuda::int4
