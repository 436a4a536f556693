// FP8 (e4m3) routed experts of a Llama 4 MoE layer: the grouped GEMM, the whole MoE block with
// FP8 experts, and the pure tile-configuration heuristic of the CUDA grouped GEMM.
//
// Format (the published FP8 checkpoints' "row-wise" recipe, LLAMA4.md §5.2):
//   expert weights   w [E, N, K] float8_e4m3fn, nn.Linear layout (K contiguous)
//   weight scales    w_scale [E, N] float32, one per output channel: W[e] ~ float(w[e]) * w_scale[e]
//   activations      quantized per row on the fly with quantize_fp8_rowwise (optional amax bound
//                    scale_ub; Meta's recipe uses 1200), AFTER the router score scaled the row.
//
// One GEMM output element (CPU and CUDA round identically; only the k-sum differs, see below):
//   acc[r, n] = sum_k float(a[r, k]) * float(w[e, n, k])        (e: the expert owning row r)
//   out[r, n] = bf16_rne( (float(acc) * w_scale[e, n]) * a_scale[r] )
// CPU: the k-sum is EXACT (every e4m3 value is a multiple of 2^-9 and at most 448, so every
// product and, for K <= 65536, every partial sum is a multiple of 2^-18 below 2^34: fewer than 53
// significant bits, so double arithmetic never rounds), then rounded once to float: independent of summation order, threads and batch composition, a deterministic
// spec. CUDA: tensor-core fp32 accumulation (CUTLASS, promoted to fp32 registers every 4 k-blocks),
// which differs from the exact sum by fp32 accumulation error only.
#pragma once
#include <cstdint>
#include <string>

#include "llama4/context.h"
#include "llama4/tensor.h"

namespace llama4 {

// Largest K the FP8 GEMMs accept: keeps the CPU k-sum exact (see above) with margin.
constexpr int64_t kMoeFp8MaxK = 65536;
// CUDA pipeline limits: the router keeps a token's choices in registers, and the expert offsets
// are one block's prefix sum.
constexpr int kMoeFp8CudaMaxTopK = 8;
constexpr int kMoeFp8CudaMaxExperts = 1024;

// Tile configuration of the CUDA FP8 grouped GEMM (CUTLASS ptr-array kernel, sm_90a). Exactly two
// are compiled (cuda/moe_gemm_sm90a.cu); `swap_ab` picks one.
struct MoeGemmConfig {
  // Computes out^T = w . a^T: the weights fill the GEMM's M (a 64-row tile) and the few tokens of
  // an expert its N (a 32-column tile), instead of wasting most of a 128-row token tile.
  bool swap_ab = false;
  int tile_m = 128, tile_n = 128, tile_k = 128;  // CTA tile of the GEMM as launched
  int cluster_m = 1, cluster_n = 2;
  const char* schedule = "cooperative";  // CUTLASS kernel schedule: "cooperative" or "pingpong"
  std::string name() const;              // e.g. "swap_ab pingpong 64x32x128 cluster 1x1"
};

// Rows per expert up to which the swap-AB kernel is used: one 32-token N tile per expert.
constexpr int64_t kMoeSwapAbMaxRowsPerExpert = 32;

// The configuration for a grouped GEMM over `rows` rows (tokens x top_k, all experts together)
// split among `experts` experts. Per-expert row counts live on the device (the host never waits
// for them), so the rule uses the mean over the experts that can be non-empty:
//   ceil(rows / min(rows, experts)) <= kMoeSwapAbMaxRowsPerExpert  ->  swap-AB, else cooperative.
// Decode and small batches (a few rows per expert) get swap-AB; prefill gets 128x128 tiles. Any
// row distribution is still computed correctly by either kernel; the rule only affects speed.
MoeGemmConfig moe_gemm_config(int64_t rows, int64_t experts);

}  // namespace llama4

namespace llama4::ops {

// ---- FP8 grouped GEMM over experts ----
// out[r, :] = the GEMM element above for the rows r of each expert.
//   a [R, K] e4m3, a_scale [R] f32, w [E, N, K] e4m3, w_scale [E, N] f32,
//   expert_offsets [E + 1] int32: expert e owns rows [off[e], off[e + 1]); off[0] = 0, off[E] <= R
//   (rows from off[E] on are not written: moe_localize's other ranks' choices), non-decreasing (checked on CPU; on CUDA they stay on the device and are clamped to [0, R]).
//   out [R, N] bfloat16, contiguous. All tensors on one device. 1 <= K <= kMoeFp8MaxK.
// CUDA: sm_90a GPUs only; K % 16 == 0 and N % 8 == 0 (TMA rows of 16 bytes), a, w and out 16-byte
// aligned. `workspace`: a uint8 tensor of at least moe_grouped_gemm_fp8_workspace_bytes() on the
// same device, or an undefined view (then the op allocates and frees its own, which synchronizes).
void moe_grouped_gemm_fp8(const Context& ctx, const TensorView& out, const TensorView& a,
                          const TensorView& a_scale, const TensorView& w, const TensorView& w_scale,
                          const TensorView& expert_offsets, const TensorView& workspace = {});
// Scratch bytes moe_grouped_gemm_fp8 needs on `device` for E experts (0 on CPU).
int64_t moe_grouped_gemm_fp8_workspace_bytes(Device device, int64_t experts);

// ---- the MoE block with FP8 routed experts ----
struct MoeFp8Experts {
  TensorView gate_up;        // [E, 2I, D] e4m3: gate rows, then up rows
  TensorView gate_up_scale;  // [E, 2I] f32
  TensorView down;           // [E, D, I] e4m3
  TensorView down_scale;     // [E, D] f32
};

// out[T, D] = shared + the routed experts (Llama 4; each step's rounding as listed):
//   ids, score = top_k of router_logits, sigmoid(logit) rounded to x's dtype       (moe_route)
//   rows grouped by expert (stable in token order), xs = round(x[t] * score)       (moe_permute)
//   a, a_scale = quantize_fp8_rowwise(xs, scale_ub)
//   gu = moe_grouped_gemm_fp8(a, gate_up)                 [R, 2I] bf16, R = T * top_k
//   h = bf16(bf16(silu(gu[:, :I])) * gu[:, I:]);  h_q, h_scale = quantize_fp8_rowwise(h, scale_ub)
//   y = moe_grouped_gemm_fp8(h_q, down)                   [R, D] bf16
//   out[t] = round(shared[t] + round(sum_j y[row of (t, j)]))                      (moe_unpermute)
// x, shared, out: [T, D] float32 or bfloat16 (one dtype; out may alias shared); router_logits:
// [T, E] float32. scale_ub: finite, >= 0 (0: no bound), bounds both activation quantizations.
// CUDA: top_k <= kMoeFp8CudaMaxTopK, E <= kMoeFp8CudaMaxExperts, D % 16 == 0, I % 16 == 0;
// nothing is read back to the host.
// `workspace`: as for moe_grouped_gemm_fp8, at least moe_fp8_workspace_bytes().
void moe_fp8(const Context& ctx, const TensorView& out, const TensorView& x,
             const TensorView& router_logits, const TensorView& shared,
             const MoeFp8Experts& experts, int64_t top_k, float scale_ub,
             const TensorView& workspace = {});
// Scratch bytes moe_fp8 needs on `device` for T tokens (0 on CPU).
int64_t moe_fp8_workspace_bytes(Device device, int64_t tokens, int64_t hidden, int64_t intermediate,
                                int64_t experts, int64_t top_k);

}  // namespace llama4::ops

namespace llama4::ops {
// Context-free form (transitional, as at the end of llama4/ops.h).
inline void moe_fp8(const TensorView& out, const TensorView& x, const TensorView& router_logits,
                    const TensorView& shared, const MoeFp8Experts& experts, int64_t top_k,
                    float scale_ub, const TensorView& workspace = {}) {
  moe_fp8(Context::on(x.device), out, x, router_logits, shared, experts, top_k, scale_ub, workspace);
}
}  // namespace llama4::ops
