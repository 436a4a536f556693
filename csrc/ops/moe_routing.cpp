// Op entries for MoE routing, permutation and un-permutation.
#include "cpu/moe_routing.h"
#include "cuda/moe_routing.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

void moe_route(const Context& ctx, const TensorView& topk_ids, const TensorView& topk_scores,
               const TensorView& logits) {
  constexpr const char* op = "moe_route";
  detail::check_activation(op, "logits", logits);
  detail::check_ndim(op, "logits", logits, 2);
  detail::check_dtype(op, "topk_ids", topk_ids, DType::I32);
  detail::check_ndim(op, "topk_ids", topk_ids, 2);
  const int64_t k = topk_ids.size(1);
  LLAMA4_CHECK_ARG(k >= 1 && k <= logits.size(1), op, ": top-k ", k, " must be in [1, ",
                   logits.size(1), "] (number of experts)");
  detail::check_shape(op, "topk_ids", topk_ids, {logits.size(0), k});
  detail::check_activation(op, "topk_scores", topk_scores);
  detail::check_shape(op, "topk_scores", topk_scores, {logits.size(0), k});
  detail::check_contiguous_out(op, "topk_ids", topk_ids);
  detail::check_contiguous_out(op, "topk_scores", topk_scores);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"topk_ids", &topk_ids},
                                {"topk_scores", &topk_scores}})
    detail::check_same_device(op, name, *t, "logits", logits);
  detail::check_context(op, ctx, "logits", logits);
  if (logits.size(0) == 0) return;
  const detail::ContiguousInput lc(ctx, logits);
  switch (logits.device.type) {
    case DeviceType::CPU: cpu::moe_route(topk_ids, topk_scores, lc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::moe_route(ctx, topk_ids, topk_scores, lc)); break;
  }
}

void moe_localize(const Context& ctx, const TensorView& topk_ids, int64_t first, int64_t count) {
  constexpr const char* op = "moe_localize";
  detail::check_dtype(op, "topk_ids", topk_ids, DType::I32);
  detail::check_ndim(op, "topk_ids", topk_ids, 2);
  detail::check_contiguous_out(op, "topk_ids", topk_ids);
  detail::check_context(op, ctx, "topk_ids", topk_ids);
  LLAMA4_CHECK_ARG(first >= 0 && count >= 1, op, ": the rank's experts [first, first + count) need first >= 0 "
                   "and count >= 1, got first = ", first, ", count = ", count);
  if (topk_ids.numel() == 0) return;
  switch (topk_ids.device.type) {
    case DeviceType::CPU: cpu::moe_localize(topk_ids, first, count); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::moe_localize(ctx, topk_ids, first, count)); break;
  }
}

void moe_permute(const Context& ctx, const TensorView& x_perm, const TensorView& perm_token,
                 const TensorView& perm_slot, const TensorView& expert_offsets, const TensorView& x,
                 const TensorView& topk_ids, const TensorView& topk_scores) {
  constexpr const char* op = "moe_permute";
  detail::check_activation(op, "x", x);
  detail::check_ndim(op, "x", x, 2);
  detail::check_dtype(op, "topk_ids", topk_ids, DType::I32);
  detail::check_ndim(op, "topk_ids", topk_ids, 2);
  const int64_t T = x.size(0), k = topk_ids.size(1), D = x.size(1);
  detail::check_shape(op, "topk_ids", topk_ids, {T, k});
  detail::check_same_dtype(op, "topk_scores", topk_scores, "x", x);
  detail::check_shape(op, "topk_scores", topk_scores, {T, k});
  detail::check_same_dtype(op, "x_perm", x_perm, "x", x);
  detail::check_shape(op, "x_perm", x_perm, {T * k, D});
  detail::check_dtype(op, "perm_token", perm_token, DType::I32);
  detail::check_shape(op, "perm_token", perm_token, {T * k});
  detail::check_dtype(op, "perm_slot", perm_slot, DType::I32);
  detail::check_shape(op, "perm_slot", perm_slot, {T * k});
  detail::check_dtype(op, "expert_offsets", expert_offsets, DType::I32);
  detail::check_ndim(op, "expert_offsets", expert_offsets, 1);
  LLAMA4_CHECK_ARG(expert_offsets.size(0) >= 2, op, ": 'expert_offsets' needs E + 1 >= 2 entries");
  for (const TensorView* t : {&x_perm, &perm_token, &perm_slot, &expert_offsets})
    detail::check_contiguous_out(op, "outputs", *t);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"topk_ids", &topk_ids},
                                {"topk_scores", &topk_scores}, {"x_perm", &x_perm}, {"perm_token", &perm_token},
                                {"perm_slot", &perm_slot}, {"expert_offsets", &expert_offsets}})
    detail::check_same_device(op, name, *t, "x", x);
  detail::check_context(op, ctx, "x", x);
  const detail::ContiguousInput xc(ctx, x), ic(ctx, topk_ids), sc(ctx, topk_scores);
  if (x.device.is_cpu()) {
    const int64_t E = expert_offsets.size(0) - 1;
    const int32_t* ids = ic.view().ptr<int32_t>();
    for (int64_t i = 0; i < T * k; ++i)
      LLAMA4_CHECK_ARG(0 <= ids[i] && ids[i] < E, op, ": expert id ", ids[i], " outside [0, ", E, ")");
  }
  switch (x.device.type) {
    case DeviceType::CPU: cpu::moe_permute(x_perm, perm_token, perm_slot, expert_offsets, xc, ic,
                                           sc); break;
    case DeviceType::CUDA:
      LLAMA4_CUDA_CALL(cuda::moe_permute(ctx, x_perm, perm_token, perm_slot, expert_offsets, xc, ic, sc));
      break;
  }
}

void moe_unpermute(const Context& ctx, const TensorView& out, const TensorView& y_perm,
                   const TensorView& perm_slot, const TensorView& shared) {
  constexpr const char* op = "moe_unpermute";
  detail::check_activation(op, "shared", shared);
  detail::check_ndim(op, "shared", shared, 2);
  const int64_t T = shared.size(0), D = shared.size(1);
  detail::check_dtype(op, "perm_slot", perm_slot, DType::I32);
  detail::check_ndim(op, "perm_slot", perm_slot, 1);
  LLAMA4_CHECK_ARG(T == 0 || perm_slot.size(0) % T == 0, op, ": 'perm_slot' length ",
                   perm_slot.size(0), " is not a multiple of the token count ", T);
  detail::check_same_dtype(op, "y_perm", y_perm, "shared", shared);
  detail::check_shape(op, "y_perm", y_perm, {perm_slot.size(0), D});
  detail::check_same_dtype(op, "out", out, "shared", shared);
  detail::check_shape(op, "out", out, {T, D});
  detail::check_contiguous_out(op, "out", out);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"y_perm", &y_perm},
                                {"perm_slot", &perm_slot}, {"out", &out}})
    detail::check_same_device(op, name, *t, "shared", shared);
  detail::check_context(op, ctx, "shared", shared);
  if (T == 0) return;
  const detail::ContiguousInput yc(ctx, y_perm), pc(ctx, perm_slot), sc(ctx, shared);
  switch (shared.device.type) {
    case DeviceType::CPU: cpu::moe_unpermute(out, yc, pc, sc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::moe_unpermute(ctx, out, yc, pc, sc)); break;
  }
}

}  // namespace llama4::ops
