// INT4 (W4A16) routed experts of a Llama 4 MoE layer: the grouped GEMM over experts and the
// quantizer that produces its weights (the interface shared by the CPU and CUDA kernels).
//
// Format (the layout of compressed-tensors "pack-quantized" W4A16 checkpoints, converted to
// nn.Linear orientation and CUTLASS's int4b_t packing; one tensor pair per expert matrix [N, K]):
//   w       [E, N, K/2] uint8: byte j of a row holds k = 2j in its LOW nibble and k = 2j + 1 in its
//           HIGH nibble, each the signed int4 value q in two's complement (-8..7).
//   w_scale [E, N, K/G] bfloat16: one scale per group of G consecutive k (G = the group size,
//           w.size(2) * 2 / w_scale.size(2)); K % G == 0 and G % kMoeInt4GroupStep == 0.
//   Dequantized weight: W[e, n, k] = float(q[e, n, k]) * float(w_scale[e, n, k / G])  (exact in fp32).
//
// Quantization (quantize_int4_grouped, `quantization="int4"` at load; round to nearest):
//   amax  = max |w| over the group (w as float)
//   scale = bf16_rne(amax / 7)            (the fp32 quotient, then rounded to bfloat16)
//   q     = clamp(rne(w / float(scale)), -8, 7)   (fp32 division, ties to even; scale 0 -> q 0)
// so an all-zero group has scale 0 and q 0. Symmetric: -8 is never produced from a group's own
// amax (|w| / scale <= 7 up to the scale's bf16 rounding), but is accepted from checkpoints.
//
// One GEMM output element (the per-group form every kernel computes):
//   out[r, n] = bf16_rne( sum_g float(w_scale[e, n, g]) * ( sum_{k in group g} float(x[r, k]) * q[e, n, k] ) )
// with fp32 accumulation, e the expert owning row r. Each product bf16 x int4 is exact in fp32, so
// this equals "dequantize exactly, then matmul" up to fp32 summation order, and differs from
// compressed-tensors' "dequantize to bf16, then the bf16 matmul" by the bf16 rounding of each
// dequantized weight (<= 2^-8 relative: bf16 keeps 8 significant bits, q * scale has up to 11).
// Summation order is the kernels' own: CPU (AVX-512 or portable) and CUDA agree within fp32
// summation error, not bit for bit.
#pragma once
#include <cstdint>

#include "llama4/context.h"
#include "llama4/tensor.h"

namespace llama4 {

// The group size of quantization at load (and of the common W4A16 checkpoints).
constexpr int64_t kMoeInt4DefaultGroup = 128;
// Every group size must be a multiple of this: the CPU kernel's step along K (32 bf16 = 16 bytes
// of packed weights per vector).
constexpr int64_t kMoeInt4GroupStep = 32;
// Largest group the quantizer takes (it holds one group per thread on the stack).
constexpr int64_t kMoeInt4MaxQuantGroup = 2048;

}  // namespace llama4

namespace llama4::ops {

// ---- INT4 grouped GEMM over experts ----
// out[r, :] = the GEMM element above for the rows r of each expert.
//   x [R, K] bfloat16 (any strides; a non-contiguous x is copied first),
//   w [E, N, K/2] uint8 and w_scale [E, N, K/G] bfloat16 (contiguous, used in place),
//   expert_offsets [E + 1] int32: expert e owns rows [off[e], off[e + 1]); off[0] = 0, off[E] <= R,
//   non-decreasing (checked on CPU; on CUDA they stay on the device). Rows from off[E] on are not
//   written (moe_localize's other ranks' choices).
//   out [R, N] bfloat16, contiguous. All tensors on one device.
// `workspace`: a uint8 tensor of at least moe_grouped_gemm_int4_workspace_bytes() on the same
// device, or an undefined view (the op then allocates its own if it needs one). CPU needs none.
void moe_grouped_gemm_int4(const Context& ctx, const TensorView& out, const TensorView& x,
                           const TensorView& w, const TensorView& w_scale,
                           const TensorView& expert_offsets, const TensorView& workspace = {});
// Scratch bytes moe_grouped_gemm_int4 needs on `device` for E experts (0 on CPU).
int64_t moe_grouped_gemm_int4_workspace_bytes(Device device, int64_t experts);

// ---- INT4 dense linear (the shared expert and the dense MLP in INT4) ----
// out[r, :] = the GEMM element above with one weight for every row: x [R, K] bfloat16 (any strides),
// w [N, K/2] uint8 and w_scale [N, K/G] bfloat16 (contiguous, used in place), out [R, N] bfloat16
// contiguous. It is the grouped GEMM with one expert owning all rows (the same kernels, picked on
// CUDA by moe_int4_gemm_config(R, 1, N, G)); on CUDA those offsets are written on the device, so
// nothing waits for the host. `workspace`: as moe_grouped_gemm_int4's for one expert.
void linear_int4(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& w,
                 const TensorView& w_scale, const TensorView& workspace = {});

// ---- quantization (the rule above) ----
// w [..., N, K] float32 or bfloat16 -> q_out [..., N, K/2] uint8 (packed as above) and
// scale_out [..., N, K/group] bfloat16. K % group == 0, group % kMoeInt4GroupStep == 0,
// group <= kMoeInt4MaxQuantGroup. A group
// holding a non-finite value raises ValueError. CPU only (loading quantizes on the host).
void quantize_int4_grouped(const Context& ctx, const TensorView& q_out, const TensorView& scale_out,
                           const TensorView& w, int64_t group);

}  // namespace llama4::ops
