// Op entries for RMSNorm / QK-norm, RoPE and SiLU-gate: validation, then device dispatch.
#include "cpu/norm_rope.h"
#include "cuda/norm_rope.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

void rms_norm(const Context& ctx, const TensorView& out, const TensorView& x,
              const TensorView& weight, float eps) {
  constexpr const char* op = "rms_norm";
  detail::check_activation(op, "x", x);
  LLAMA4_CHECK_ARG(x.ndim >= 1, op, ": 'x' must have at least 1 dimension");
  detail::check_same_dtype(op, "out", out, "x", x);
  detail::check_same_device(op, "out", out, "x", x);
  detail::check_context(op, ctx, "x", x);
  detail::check_shape(op, "out", out, x.sizes());
  detail::check_contiguous_out(op, "out", out);
  LLAMA4_CHECK_ARG(eps >= 0.f, op, ": 'eps' must be >= 0, got ", eps);
  const bool has_weight = weight.data != nullptr || weight.ndim > 0;
  if (has_weight) {
    detail::check_same_dtype(op, "weight", weight, "x", x);
    detail::check_same_device(op, "weight", weight, "x", x);
    detail::check_shape(op, "weight", weight, {x.size(-1)});
  }
  if (x.numel() == 0) return;
  const detail::ContiguousInput xc(ctx, x), wc(ctx, weight);  // an undefined weight stays undefined
  switch (x.device.type) {
    case DeviceType::CPU: cpu::rms_norm(out, xc, wc, eps); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::rms_norm(ctx, out, xc, wc, eps)); break;
  }
}

void rope(const Context& ctx, const TensorView& out, const TensorView& x,
          const TensorView& positions, const TensorView& inv_freq) {
  constexpr const char* op = "rope";
  detail::check_activation(op, "x", x);
  detail::check_ndim(op, "x", x, 3);
  LLAMA4_CHECK_ARG(x.size(2) % 2 == 0, op, ": head_dim (last dimension of 'x') must be even, got ",
                   x.size(2));
  detail::check_dtype_in(op, "positions", positions, {DType::I32, DType::I64});
  detail::check_shape(op, "positions", positions, {x.size(0)});
  detail::check_dtype(op, "inv_freq", inv_freq, DType::F32);
  detail::check_shape(op, "inv_freq", inv_freq, {x.size(2) / 2});
  detail::check_same_dtype(op, "out", out, "x", x);
  detail::check_shape(op, "out", out, x.sizes());
  detail::check_contiguous_out(op, "out", out);
  for (const auto* t : {&out, &positions, &inv_freq})
    detail::check_same_device(op, t == &out ? "out" : t == &positions ? "positions" : "inv_freq",
                              *t, "x", x);
  detail::check_context(op, ctx, "x", x);
  if (x.numel() == 0) return;
  const detail::ContiguousInput xc(ctx, x), pc(ctx, positions), fc(ctx, inv_freq);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::rope(out, xc, pc, fc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::rope(ctx, out, xc, pc, fc)); break;
  }
}

void silu_gate(const Context& ctx, const TensorView& out, const TensorView& gate,
               const TensorView& up) {
  constexpr const char* op = "silu_gate";
  detail::check_activation(op, "gate", gate);
  detail::check_same_dtype(op, "up", up, "gate", gate);
  detail::check_same_dtype(op, "out", out, "gate", gate);
  detail::check_shape(op, "up", up, gate.sizes());
  detail::check_shape(op, "out", out, gate.sizes());
  detail::check_same_device(op, "up", up, "gate", gate);
  detail::check_same_device(op, "out", out, "gate", gate);
  detail::check_context(op, ctx, "gate", gate);
  detail::check_contiguous_out(op, "out", out);
  if (gate.numel() == 0) return;
  const detail::ContiguousInput gc(ctx, gate), uc(ctx, up);
  switch (gate.device.type) {
    case DeviceType::CPU: cpu::silu_gate(out, gc, uc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::silu_gate(ctx, out, gc, uc)); break;
  }
}

}  // namespace llama4::ops
