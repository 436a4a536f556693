// Op entries for the INT4 routed experts (llama4/moe_int4.h): argument validation, then device
// dispatch.
#include "cpu/moe_int4.h"
#include "cuda/moe_int4.h"
#include "cuda/moe_int4_dense.h"
#include "llama4/moe_int4.h"
#include "llama4/moe_int4_config.h"
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

// The group size G of packed weights [.., N, K/2] with scales [.., N, K/G]: K % G == 0 and
// G % kMoeInt4GroupStep == 0 (the kernels take whole groups of whole steps).
int64_t group_size(const char* op, int64_t K, int64_t groups) {
  LLAMA4_CHECK_ARG(groups >= 1 && K % groups == 0, op, ": 'w_scale' must hold K / G scales per row for a group "
                   "size G dividing K = ", K, ", got ", groups, " per row");
  const int64_t G = K / groups;
  LLAMA4_CHECK_ARG(G % kMoeInt4GroupStep == 0, op, ": the group size K / w_scale.size(2) = ", G,
                   " must be a multiple of ", kMoeInt4GroupStep);
  return G;
}

// A caller's CUDA workspace (nullptr: none given, the CUDA op takes a stream-ordered temporary).
[[maybe_unused]] void* cuda_workspace(const char* op, const TensorView& ws, const TensorView& ref,
                                      int64_t experts) {
  if (!defined(ws)) return nullptr;
  const int64_t need = moe_grouped_gemm_int4_workspace_bytes(ref.device, experts);
  LLAMA4_CHECK_ARG(ws.is_contiguous() && ws.numel() >= need, op, ": 'workspace' must be a contiguous "
                   "uint8 tensor of at least ", need, " bytes, got shape ", ws.shape_str());
  LLAMA4_CHECK_ARG(reinterpret_cast<uintptr_t>(ws.data) % 256 == 0, op,
                   ": 'workspace' must be 256-byte aligned");
  return ws.data;
}

// The op with the CUDA kernel `forced` names, or (nullptr) the one moe_int4_gemm_config picks.
void grouped_gemm_int4(const char* op, const Context& ctx, const TensorView& out, const TensorView& x,
                       const TensorView& w, const TensorView& w_scale,
                       const TensorView& expert_offsets, const TensorView& workspace,
                       const MoeInt4Kernel* forced) {
  detail::check_dtype(op, "x", x, DType::BF16);
  detail::check_ndim(op, "x", x, 2);
  detail::check_dtype(op, "w", w, DType::U8);
  detail::check_ndim(op, "w", w, 3);
  const int64_t R = x.size(0), K = x.size(1), E = w.size(0), N = w.size(1);
  LLAMA4_CHECK_ARG(E >= 1 && K % 2 == 0 && w.size(2) * 2 == K, op, ": 'w' must have shape [E >= 1, N, ", K / 2,
                   "] (two int4 per byte) to match 'x' ", x.shape_str(), ", got ", w.shape_str());
  detail::check_dtype(op, "w_scale", w_scale, DType::BF16);
  detail::check_ndim(op, "w_scale", w_scale, 3);
  LLAMA4_CHECK_ARG(w_scale.size(0) == E && w_scale.size(1) == N, op, ": 'w_scale' must have shape [", E, ", ", N,
                   ", K / G], got ", w_scale.shape_str());
  const int64_t G = group_size(op, K, w_scale.size(2));
  detail::check_dtype(op, "expert_offsets", expert_offsets, DType::I32);
  detail::check_shape(op, "expert_offsets", expert_offsets, {E + 1});
  detail::check_dtype(op, "out", out, DType::BF16);
  detail::check_shape(op, "out", out, {R, N});
  detail::check_contiguous_out(op, "out", out);
  detail::check_same_device(op, "expert_offsets", expert_offsets, "x", x);
  detail::check_same_device(op, "out", out, "x", x);
  detail::check_context(op, ctx, "x", x);
  check_weight(op, "w", w, x);
  check_weight(op, "w_scale", w_scale, x);
  if (defined(workspace)) {
    detail::check_dtype(op, "workspace", workspace, DType::U8);
    detail::check_same_device(op, "workspace", workspace, "x", x);
  }
  const detail::ContiguousInput xc(ctx, x), oc(ctx, expert_offsets);
  if (x.device.is_cpu()) {  // the CPU can afford to check the offsets
    const int32_t* off = oc.view().ptr<int32_t>();
    bool ok = off[0] == 0 && off[E] <= R;
    for (int64_t e = 0; ok && e < E; ++e) ok = off[e] <= off[e + 1];
    LLAMA4_CHECK_ARG(ok, op, ": 'expert_offsets' must rise from 0 to at most ", R, " (the rows of 'x')");
  }
  if (R == 0 || N == 0) return;
  switch (x.device.type) {
    case DeviceType::CPU: cpu::moe_grouped_gemm_int4(out, xc, w, w_scale, oc); break;
    case DeviceType::CUDA: {
      [[maybe_unused]] const MoeInt4Kernel kernel =
          forced ? *forced : moe_int4_gemm_config(R, E, N, G).kernel;
      LLAMA4_CUDA_CALL(cuda::moe_grouped_gemm_int4(ctx, out, xc, w, w_scale, oc,
                                                   cuda_workspace(op, workspace, x, E), kernel));
      break;
    }
  }
}

}  // namespace

void moe_grouped_gemm_int4(const Context& ctx, const TensorView& out, const TensorView& x,
                           const TensorView& w, const TensorView& w_scale,
                           const TensorView& expert_offsets, const TensorView& workspace) {
  grouped_gemm_int4("moe_grouped_gemm_int4", ctx, out, x, w, w_scale, expert_offsets, workspace, nullptr);
}

void moe_grouped_gemm_int4_kernel(const Context& ctx, const TensorView& out, const TensorView& x,
                                  const TensorView& w, const TensorView& w_scale,
                                  const TensorView& expert_offsets, MoeInt4Kernel kernel,
                                  const TensorView& workspace) {
  grouped_gemm_int4("moe_grouped_gemm_int4_kernel", ctx, out, x, w, w_scale, expert_offsets, workspace,
                    &kernel);
}

void linear_int4(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& w,
                 const TensorView& w_scale, const TensorView& workspace) {
  constexpr const char* op = "linear_int4";
  detail::check_dtype(op, "x", x, DType::BF16);
  detail::check_ndim(op, "x", x, 2);
  detail::check_dtype(op, "w", w, DType::U8);
  detail::check_ndim(op, "w", w, 2);
  detail::check_dtype(op, "w_scale", w_scale, DType::BF16);
  detail::check_ndim(op, "w_scale", w_scale, 2);
  check_weight(op, "w", w, x);
  check_weight(op, "w_scale", w_scale, x);
  detail::check_context(op, ctx, "x", x);
  const int64_t R = x.size(0), K = x.size(1), N = w.size(0);
  LLAMA4_CHECK_ARG(w.size(1) * 2 == K, op, ": 'w' must have shape [N, ", K / 2, "] (two int4 per byte) to match 'x' ",
                   x.shape_str(), ", got ", w.shape_str());
  LLAMA4_CHECK_ARG(w_scale.size(0) == N, op, ": 'w_scale' must have shape [", N, ", K / G], got ",
                   w_scale.shape_str());
  LLAMA4_CHECK_ARG(R <= INT32_MAX, op, ": the rows of 'x' must fit in int32, got ", R);
  // One expert owning every row: the weights as [1, N, ...] views, the offsets [0, R].
  TensorView w3 = w.reshape({1, N, w.size(1)}), s3 = w_scale.reshape({1, w_scale.size(0), w_scale.size(1)});
  Tensor off;
  if (x.device.is_cpu()) {
    off = Tensor::empty({2}, DType::I32, x.device);
    off.ptr<int32_t>()[0] = 0;
    off.ptr<int32_t>()[1] = int32_t(R);
  } else {
    LLAMA4_CUDA_CALL(off = cuda::int4_all_rows_offsets(ctx, R));
  }
  grouped_gemm_int4(op, ctx, out, x, w3, s3, off, workspace, nullptr);
}

int64_t moe_grouped_gemm_int4_workspace_bytes(Device device, int64_t experts) {
  LLAMA4_CHECK_ARG(experts >= 1, "moe_grouped_gemm_int4_workspace_bytes: experts must be >= 1");
  if (device.is_cpu()) return 0;
  int64_t n = 0;
  LLAMA4_CUDA_CALL(n = int64_t(cuda::moe_grouped_gemm_int4_workspace_bytes(device.index, experts)));
  return n;
}

void quantize_int4_grouped(const Context& ctx, const TensorView& q_out, const TensorView& scale_out,
                           const TensorView& w, int64_t group) {
  constexpr const char* op = "quantize_int4_grouped";
  detail::check_dtype_in(op, "w", w, {DType::F32, DType::BF16});
  LLAMA4_CHECK_ARG(w.ndim >= 1, op, ": 'w' must be at least 1-d, got shape ", w.shape_str());
  const int64_t K = w.size(w.ndim - 1);
  LLAMA4_CHECK_ARG(group >= kMoeInt4GroupStep && group <= kMoeInt4MaxQuantGroup && group % kMoeInt4GroupStep == 0, op,
                   ": group must be a multiple of ", kMoeInt4GroupStep, " in [", kMoeInt4GroupStep,
                   ", ", kMoeInt4MaxQuantGroup, "], got ", group);
  LLAMA4_CHECK_ARG(K % group == 0, op, ": the last dimension of 'w' (", K, ") must be a multiple of group = ",
                   group, " (no partial groups)");
  Shape qs = w.sizes(), ss = w.sizes();
  qs.back() = K / 2;
  ss.back() = K / group;
  detail::check_dtype(op, "q_out", q_out, DType::U8);
  detail::check_shape(op, "q_out", q_out, qs);
  detail::check_contiguous_out(op, "q_out", q_out);
  detail::check_dtype(op, "scale_out", scale_out, DType::BF16);
  detail::check_shape(op, "scale_out", scale_out, ss);
  detail::check_contiguous_out(op, "scale_out", scale_out);
  detail::check_same_device(op, "q_out", q_out, "w", w);
  detail::check_same_device(op, "scale_out", scale_out, "w", w);
  detail::check_context(op, ctx, "w", w);
  const detail::ContiguousInput wc(ctx, w);
  switch (w.device.type) {
    case DeviceType::CPU: cpu::quantize_int4_grouped(q_out, scale_out, wc, group); break;
    case DeviceType::CUDA: detail::throw_cuda_not_implemented(op);
  }
}

}  // namespace llama4::ops
