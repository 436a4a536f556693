// The two CUDA kernels of the INT4 (W4A16) grouped GEMM over experts (llama4/moe_int4.h) and the
// pure host rule that picks one. Built on every backend, so the rule is unit-tested and printed
// anywhere; the kernels themselves are in csrc/cuda/moe_int4*.cu.
//
// What each kernel computes, for the rows r of expert e (q: the int4 weight, s: its bf16 group
// scale, G: the group size, every sum in fp32):
//   Gemv     out[r, n] = bf16_rne( sum_g float(s[e, n, g]) * sum_{k in g} float(x[r, k]) * q[e, n, k] )
//            the op's formula (llama4/moe_int4.h) up to fp32 summation order: the products are
//            exact, each 32-value slice of a group is summed in fp32 and multiplied by the scale.
//   Cutlass  out[r, n] = bf16_rne( sum_k float(x[r, k]) * float(bf16_rne(q[e, n, k] * s[e, n, k / G])) )
//            "dequantize to bf16, then the bf16 matmul" (compressed-tensors' reference): CUTLASS's
//            mixed-input mainloop scales each converted weight in bf16 before the tensor cores. It
//            differs from the op's formula by the bf16 rounding of each q * s (<= 2^-9 relative).
#pragma once
#include <cstdint>
#include <string>

#include "llama4/context.h"
#include "llama4/tensor.h"

namespace llama4 {

enum class MoeInt4Kernel {
  // Decode: streams the int4 weights once per 4 token rows (16-byte loads, unpacked in registers,
  // fp32 FMAs), grouped over the non-empty experts found on the device. Any shape.
  Gemv,
  // Prefill: CUTLASS ptr-array mixed-input grouped GEMM (sm_90a wgmma), swap-AB, tile 128x128x64.
  // Needs N % 8 == 0 and a group size that is a multiple of kMoeInt4CutlassGroupMultiple.
  Cutlass,
};

const char* moe_int4_kernel_name(MoeInt4Kernel kernel);  // "gemv" / "cutlass"

// Mean rows per (possibly) busy expert up to which the Gemv kernel is used. Gemv's fp32 FMAs keep
// pace with HBM for a few rows (each weight feeds one FMA per row); beyond, the tensor cores win.
constexpr int64_t kMoeInt4GemvMaxRowsPerExpert = 8;
// The CUTLASS kernel's K tile (64 bf16): the group size must be a multiple of it.
constexpr int64_t kMoeInt4CutlassGroupMultiple = 64;
// CUDA: the experts a grouped call may have (the Gemv kernel lists the non-empty ones in shared
// memory; the CUTLASS kernel's arguments are built by one block).
constexpr int64_t kMoeInt4CudaMaxExperts = 1024;

struct MoeInt4GemmConfig {
  MoeInt4Kernel kernel = MoeInt4Kernel::Gemv;
  std::string name() const { return moe_int4_kernel_name(kernel); }
};

// The kernel for a grouped GEMM of `rows` rows (all experts together) over `experts` experts with
// N output channels and group size `group_size`. Per-expert row counts stay on the device, so the
// rule uses the mean over the experts that can be non-empty, as moe_gemm_config (FP8) does:
//   CUTLASS-eligible (N % 8 == 0, group_size % 64 == 0) and
//   ceil(rows / min(rows, experts)) > kMoeInt4GemvMaxRowsPerExpert  ->  Cutlass, else Gemv.
// Either kernel computes any row distribution; the rule only affects speed.
MoeInt4GemmConfig moe_int4_gemm_config(int64_t rows, int64_t experts, int64_t n, int64_t group_size);

}  // namespace llama4

namespace llama4::ops {
// moe_grouped_gemm_int4 (llama4/moe_int4.h) with the CUDA kernel named by the caller instead of
// moe_int4_gemm_config's choice: tests and benchmarks run both kernels on the same inputs. Same
// validation; on the CPU `kernel` is ignored. Cutlass on a shape it cannot take: ValueError.
void moe_grouped_gemm_int4_kernel(const Context& ctx, const TensorView& out, const TensorView& x,
                                  const TensorView& w, const TensorView& w_scale,
                                  const TensorView& expert_offsets, MoeInt4Kernel kernel,
                                  const TensorView& workspace = {});
}  // namespace llama4::ops
