// The CUDA FP8 MoE pipeline (cuda/moe_fp8.h; contract and roundings: llama4/moe_fp8.h):
//   route (top-k, sigmoid) -> per-expert counts, stable ranks, offsets (all on the device)
//   -> gather rows by expert, scale by the router score, quantize (one kernel)
//   -> grouped GEMM gate_up (CUTLASS, sm_90a) -> SiLU-gate + re-quantize (one kernel)
//   -> grouped GEMM down -> inverse permutation summed per token + shared expert (one kernel).
// Eight launches on the context's stream and no host synchronization: the expert offsets never
// leave the device (the GEMM's per-group sizes are built from them on the device), so a step can
// be captured in a CUDA graph. Scratch memory is one caller-provided workspace, carved here;
// without one, a stream-ordered temporary of the context (no allocation call, no synchronisation).
#include <cuda_runtime.h>

#include <memory>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/moe_fp8.h"
#include "cuda/moe_gemm_sm90a.h"
#include "cuda/moe_kernels.h"
#include "cuda/runtime.h"

namespace llama4::cuda {

namespace {

constexpr size_t align256(size_t n) { return (n + 255) / 256 * 256; }

struct Scratch {
  int32_t *ids, *rank, *counts, *offsets, *perm_slot;
  float *scores, *a_scale, *h_scale;
  fp8e4m3 *a_q, *h_q;
  bf16 *gu, *y;
  char* gemm;  // the grouped GEMM's workspace (shared by both GEMMs, which run one after the other)
  size_t gemm_bytes;
  size_t total;
};

// Carves the buffers of a T-token step from `base` (nullptr: only measures).
Scratch carve(char* base, int64_t T, int64_t D, int64_t I, int64_t E, int64_t k, size_t gemm_bytes) {
  Scratch s{};
  size_t off = 0;
  auto take = [&](auto*& p, int64_t n) {
    using V = std::remove_pointer_t<std::remove_reference_t<decltype(p)>>;
    p = reinterpret_cast<V*>(base ? base + off : nullptr);
    off += align256(sizeof(V) * size_t(n));
  };
  const int64_t R = T * k;
  take(s.ids, R);
  take(s.rank, R);
  take(s.counts, E);
  take(s.offsets, E + 1);
  take(s.perm_slot, R);
  take(s.scores, R);
  take(s.a_scale, R);
  take(s.h_scale, R);
  take(s.a_q, R * D);  // every base is 256-byte aligned: TMA needs 16
  take(s.h_q, R * I);
  take(s.gu, R * 2 * I);
  take(s.y, R * D);
  take(s.gemm, int64_t(gemm_bytes));
  s.gemm_bytes = gemm_bytes;
  s.total = off;
  return s;
}

// The scratch of a call: the caller's workspace, or a stream-ordered temporary of ctx.
struct Workspace {
  Tensor owned;
  char* base;
  Workspace(const Context& ctx, void* given, size_t bytes)
      : owned(given ? Tensor() : ctx.empty({int64_t(bytes)}, DType::U8)),
        base(static_cast<char*>(given ? given : owned.data())) {}
};

sm90a::GroupedGemmFp8 gemm_args(const void* a, const float* a_scale, const TensorView& w,
                                const TensorView& w_scale, void* out, const int32_t* offsets,
                                int64_t rows) {
  sm90a::GroupedGemmFp8 p;
  p.a = a;
  p.a_scale = a_scale;
  p.w = w.data;
  p.w_scale = w_scale.ptr<float>();
  p.out = out;
  p.expert_offsets = offsets;
  p.experts = int(w.size(0));
  p.rows = rows;
  p.n = int(w.size(1));
  p.k = int(w.size(2));
  return p;
}

}  // namespace

size_t moe_grouped_gemm_fp8_workspace_bytes(int device, int64_t experts) {
  return sm90a::grouped_gemm_fp8_workspace_bytes(device, int(experts));
}

void moe_grouped_gemm_fp8(const Context& ctx, const TensorView& out, const TensorView& a,
                          const TensorView& a_scale, const TensorView& w, const TensorView& w_scale,
                          const TensorView& expert_offsets, void* workspace) {
  const int device = a.device.index;
  const OpScope scope(ctx);
  const int64_t E = w.size(0), R = a.size(0);
  const size_t bytes = moe_grouped_gemm_fp8_workspace_bytes(device, E);
  Workspace ws(ctx, workspace, bytes);
  const auto p = gemm_args(a.data, a_scale.ptr<float>(), w, w_scale, out.data,
                           expert_offsets.ptr<int32_t>(), R);
  sm90a::grouped_gemm_fp8(p, moe_gemm_config(R, E), ws.base, bytes, device, scope.stream);
}

size_t moe_fp8_workspace_bytes(int device, int64_t tokens, int64_t hidden, int64_t intermediate,
                               int64_t experts, int64_t top_k) {
  const size_t gemm = sm90a::grouped_gemm_fp8_workspace_bytes(device, int(experts));
  return carve(nullptr, tokens, hidden, intermediate, experts, top_k, gemm).total;
}

void moe_fp8(const Context& ctx, const TensorView& out, const TensorView& x,
             const TensorView& router_logits, const TensorView& shared, const ops::MoeFp8Experts& ex,
             int64_t top_k, float scale_ub, void* workspace) {
  const int device = x.device.index;
  const OpScope scope(ctx);
  const cudaStream_t st = scope.stream;
  const int64_t T = x.size(0), D = x.size(1), E = ex.gate_up.size(0), I = ex.down.size(2);
  const int64_t R = T * top_k;
  const int k = int(top_k);
  const size_t bytes = moe_fp8_workspace_bytes(device, T, D, I, E, top_k);
  Workspace ws(ctx, workspace, bytes);
  const Scratch s = carve(ws.base, T, D, I, E, top_k, sm90a::grouped_gemm_fp8_workspace_bytes(device, int(E)));
  const MoeGemmConfig config = moe_gemm_config(R, E);

  moe::route(st, router_logits.ptr<float>(), T, int(E), k, x.dtype, s.ids, s.scores);
  moe::expert_ranks(st, s.ids, R, int(E), s.rank, s.counts);
  moe::expert_offsets(st, s.counts, int(E), s.offsets);
  moe::gather_scale_quantize(st, x, s.ids, s.scores, s.rank, s.offsets, k, scale_ub, s.a_q, s.a_scale,
                             s.perm_slot);
  sm90a::grouped_gemm_fp8(gemm_args(s.a_q, s.a_scale, ex.gate_up, ex.gate_up_scale, s.gu, s.offsets, R),
                          config, s.gemm, s.gemm_bytes, device, st);
  moe::silu_gate_quantize(st, s.gu, R, I, scale_ub, s.h_q, s.h_scale);
  sm90a::grouped_gemm_fp8(gemm_args(s.h_q, s.h_scale, ex.down, ex.down_scale, s.y, s.offsets, R),
                          config, s.gemm, s.gemm_bytes, device, st);
  moe::unpermute_add(st, out, s.y, s.perm_slot, shared, k);
}

}  // namespace llama4::cuda
