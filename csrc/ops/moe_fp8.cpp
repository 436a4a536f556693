// Op entries for the FP8 MoE (llama4/moe_fp8.h): argument validation, then device dispatch.
#include <cmath>

#include "cpu/moe_fp8.h"
#include "cpu/moe_gemm_fp8.h"
#include "cuda/moe_fp8.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

namespace {

bool defined(const TensorView& t) { return t.data != nullptr || t.ndim > 0; }

// Weights are used in place (never copied): they must be contiguous.
void check_weight(const char* op, const char* name, const TensorView& t, const TensorView& ref) {
  detail::check_same_device(op, name, t, "x", ref);
  LLAMA4_CHECK_ARG(t.is_contiguous(), op, ": '", name, "' must be contiguous");
}

void check_k(const char* op, int64_t K) {
  LLAMA4_CHECK_ARG(K >= 1 && K <= kMoeFp8MaxK, op, ": the reduction size K must be in [1, ",
                   kMoeFp8MaxK, "], got ", K);
}

// CUDA (TMA) needs 16-byte rows and bases: K e4m3 and N bf16 per row.
void check_cuda_gemm(const char* op, int64_t N, int64_t K,
                     std::initializer_list<const TensorView*> ptrs) {
  LLAMA4_CHECK_ARG(K % 16 == 0 && N % 8 == 0, op, ": on CUDA K must be a multiple of 16 and N of 8 "
                   "(16-byte TMA rows), got K = ", K, ", N = ", N);
  for (const TensorView* t : ptrs)
    LLAMA4_CHECK_ARG(reinterpret_cast<uintptr_t>(t->data) % 16 == 0, op,
                     ": on CUDA the operands must be 16-byte aligned");
}

[[maybe_unused]] void* cuda_workspace(const char* op, const TensorView& ws, const TensorView& ref, int64_t need) {
  if (!defined(ws)) return nullptr;
  detail::check_dtype(op, "workspace", ws, DType::U8);
  detail::check_same_device(op, "workspace", ws, "x", ref);
  LLAMA4_CHECK_ARG(ws.is_contiguous() && ws.numel() >= need, op, ": 'workspace' must be a contiguous "
                   "uint8 tensor of at least ", need, " bytes, got shape ", ws.shape_str());
  LLAMA4_CHECK_ARG(reinterpret_cast<uintptr_t>(ws.data) % 256 == 0, op,
                   ": 'workspace' must be 256-byte aligned");
  return ws.data;
}

}  // namespace

void moe_grouped_gemm_fp8(const Context& ctx, const TensorView& out, const TensorView& a,
                          const TensorView& a_scale, const TensorView& w, const TensorView& w_scale,
                          const TensorView& expert_offsets, const TensorView& workspace) {
  constexpr const char* op = "moe_grouped_gemm_fp8";
  detail::check_dtype(op, "a", a, DType::F8E4M3);
  detail::check_ndim(op, "a", a, 2);
  detail::check_dtype(op, "w", w, DType::F8E4M3);
  detail::check_ndim(op, "w", w, 3);
  const int64_t R = a.size(0), K = a.size(1), E = w.size(0), N = w.size(1);
  LLAMA4_CHECK_ARG(E >= 1 && w.size(2) == K, op, ": 'w' must have shape [E >= 1, N, ", K,
                   "] to match 'a' ", a.shape_str(), ", got ", w.shape_str());
  check_k(op, K);
  detail::check_dtype(op, "a_scale", a_scale, DType::F32);
  detail::check_shape(op, "a_scale", a_scale, {R});
  detail::check_dtype(op, "w_scale", w_scale, DType::F32);
  detail::check_shape(op, "w_scale", w_scale, {E, N});
  detail::check_dtype(op, "expert_offsets", expert_offsets, DType::I32);
  detail::check_shape(op, "expert_offsets", expert_offsets, {E + 1});
  detail::check_dtype(op, "out", out, DType::BF16);
  detail::check_shape(op, "out", out, {R, N});
  detail::check_contiguous_out(op, "out", out);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"a_scale", &a_scale},
                                {"expert_offsets", &expert_offsets}, {"out", &out}})
    detail::check_same_device(op, name, *t, "a", a);
  detail::check_context(op, ctx, "a", a);
  check_weight(op, "w", w, a);
  check_weight(op, "w_scale", w_scale, a);
  const detail::ContiguousInput ac(ctx, a), sc(ctx, a_scale), oc(ctx, expert_offsets);
  if (a.device.is_cpu()) {  // the CPU can afford to check the offsets; CUDA clamps them
    const int32_t* off = oc.view().ptr<int32_t>();
    bool ok = off[0] == 0 && off[E] <= R;
    for (int64_t e = 0; ok && e < E; ++e) ok = off[e] <= off[e + 1];
    LLAMA4_CHECK_ARG(ok, op, ": 'expert_offsets' must rise from 0 to at most ", R, " (the rows of 'a')");
  }
  if (R == 0 || N == 0) return;
  switch (a.device.type) {
    case DeviceType::CPU: cpu::moe_grouped_gemm_fp8(out, ac, sc, w, w_scale, oc); break;
    case DeviceType::CUDA:
      check_cuda_gemm(op, N, K, {&ac.view(), &w, &out});
      LLAMA4_CUDA_CALL(cuda::moe_grouped_gemm_fp8(ctx, 
          out, ac, sc, w, w_scale, oc,
          cuda_workspace(op, workspace, a, moe_grouped_gemm_fp8_workspace_bytes(a.device, E))));
      break;
  }
}

int64_t moe_grouped_gemm_fp8_workspace_bytes(Device device, int64_t experts) {
  LLAMA4_CHECK_ARG(experts >= 1, "moe_grouped_gemm_fp8_workspace_bytes: experts must be >= 1");
  if (device.is_cpu()) return 0;
  int64_t n = 0;
  LLAMA4_CUDA_CALL(n = int64_t(cuda::moe_grouped_gemm_fp8_workspace_bytes(device.index, experts)));
  return n;
}

void moe_fp8(const Context& ctx, const TensorView& out, const TensorView& x,
             const TensorView& router_logits, const TensorView& shared, const MoeFp8Experts& ex,
             int64_t top_k, float scale_ub, const TensorView& workspace) {
  constexpr const char* op = "moe_fp8";
  detail::check_dtype_in(op, "x", x, {DType::F32, DType::BF16});
  detail::check_ndim(op, "x", x, 2);
  detail::check_dtype(op, "gate_up", ex.gate_up, DType::F8E4M3);
  detail::check_ndim(op, "gate_up", ex.gate_up, 3);
  const int64_t T = x.size(0), D = x.size(1), E = ex.gate_up.size(0), I2 = ex.gate_up.size(1);
  LLAMA4_CHECK_ARG(E >= 1 && I2 % 2 == 0 && I2 > 0 && ex.gate_up.size(2) == D, op,
                   ": 'gate_up' must have shape [E >= 1, 2I, ", D, "], got ", ex.gate_up.shape_str());
  const int64_t I = I2 / 2;
  detail::check_dtype(op, "gate_up_scale", ex.gate_up_scale, DType::F32);
  detail::check_shape(op, "gate_up_scale", ex.gate_up_scale, {E, I2});
  detail::check_dtype(op, "down", ex.down, DType::F8E4M3);
  detail::check_shape(op, "down", ex.down, {E, D, I});
  detail::check_dtype(op, "down_scale", ex.down_scale, DType::F32);
  detail::check_shape(op, "down_scale", ex.down_scale, {E, D});
  check_k(op, D);
  check_k(op, I);
  detail::check_dtype(op, "router_logits", router_logits, DType::F32);
  detail::check_shape(op, "router_logits", router_logits, {T, E});
  detail::check_same_dtype(op, "shared", shared, "x", x);
  detail::check_shape(op, "shared", shared, {T, D});
  detail::check_same_dtype(op, "out", out, "x", x);
  detail::check_shape(op, "out", out, {T, D});
  detail::check_contiguous_out(op, "out", out);
  LLAMA4_CHECK_ARG(top_k >= 1 && top_k <= E, op, ": top_k must be in [1, ", E, "], got ", top_k);
  LLAMA4_CHECK_ARG(std::isfinite(scale_ub) && scale_ub >= 0.f, op,
                   ": 'scale_ub' must be finite and >= 0 (0: no bound), got ", scale_ub);
  detail::check_same_device(op, "router_logits", router_logits, "x", x);
  detail::check_same_device(op, "shared", shared, "x", x);
  detail::check_same_device(op, "out", out, "x", x);
  detail::check_context(op, ctx, "x", x);
  check_weight(op, "gate_up", ex.gate_up, x);
  check_weight(op, "gate_up_scale", ex.gate_up_scale, x);
  check_weight(op, "down", ex.down, x);
  check_weight(op, "down_scale", ex.down_scale, x);
  if (T == 0) return;
  const detail::ContiguousInput xc(ctx, x), lc(ctx, router_logits), sc(ctx, shared);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::moe_fp8(out, xc, lc, sc, ex, top_k, scale_ub); break;
    case DeviceType::CUDA:
      LLAMA4_CHECK_ARG(top_k <= kMoeFp8CudaMaxTopK && E <= kMoeFp8CudaMaxExperts, op, ": on CUDA top_k "
                       "must be <= ", kMoeFp8CudaMaxTopK, " and E <= ", kMoeFp8CudaMaxExperts, ", got top_k = ",
                       top_k, ", E = ", E);
      check_cuda_gemm(op, 2 * I, D, {&ex.gate_up});
      check_cuda_gemm(op, D, I, {&ex.down});
      LLAMA4_CUDA_CALL(cuda::moe_fp8(ctx, 
          out, xc, lc, sc, ex, top_k, scale_ub,
          cuda_workspace(op, workspace, x, moe_fp8_workspace_bytes(x.device, T, D, I, E, top_k))));
      break;
  }
}

int64_t moe_fp8_workspace_bytes(Device device, int64_t tokens, int64_t hidden, int64_t intermediate,
                                int64_t experts, int64_t top_k) {
  LLAMA4_CHECK_ARG(tokens >= 0 && hidden >= 1 && intermediate >= 1 && experts >= 1 && top_k >= 1,
                   "moe_fp8_workspace_bytes: sizes must be positive (tokens >= 0)");
  if (device.is_cpu()) return 0;
  int64_t n = 0;
  LLAMA4_CUDA_CALL(n = int64_t(cuda::moe_fp8_workspace_bytes(device.index, tokens, hidden,
                                                             intermediate, experts, top_k)));
  return n;
}

}  // namespace llama4::ops
