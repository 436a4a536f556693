// The INT4 experts' SwiGLU (see moe_int4_experts.h).
#include "model/moe_int4_experts.h"

#include "llama4/moe_int4.h"
#include "llama4/ops.h"

namespace llama4::detail {

namespace {
TensorView columns(const TensorView& t, int64_t first, int64_t count) {
  TensorView v = t;
  v.shape[1] = count;
  v.data = static_cast<char*>(t.data) + first * int64_t(element_size(t.dtype));
  return v;
}

// A float32 model's rows rounded to bf16 (W4A16 reads bf16); a bf16 model's as they are.
TensorView as_bf16(const Context& ctx, const TensorView& x, Tensor& holder) {
  if (x.dtype == DType::BF16) return x;
  holder = ctx.empty(x.sizes(), DType::BF16);
  ops::cast(ctx, holder, x);
  return holder.view();
}

// The bf16 result in the model dtype (widening is exact).
Tensor in_dtype(const Context& ctx, Tensor y, DType dtype) {
  if (dtype == DType::BF16) return y;
  Tensor out = ctx.empty(y.view().sizes(), dtype);
  ops::cast(ctx, out, y);
  return out;
}
}  // namespace

Tensor moe_int4_experts(const Context& ctx, const LayerWeights& w, const TensorView& x_perm,
                        const TensorView& offsets, DType dtype) {
  const int64_t R = x_perm.size(0), D = x_perm.size(1), I = w.gate_up.size(1) / 2;
  Tensor xb;
  const TensorView x = as_bf16(ctx, x_perm, xb);
  Tensor gu = ctx.zeros({R, 2 * I}, DType::BF16);
  ops::moe_grouped_gemm_int4(ctx, gu, x, w.gate_up, w.gate_up_scale, offsets);
  Tensor act = ctx.empty({R, I}, DType::BF16);
  ops::silu_gate(ctx, act, columns(gu, 0, I), columns(gu, I, I));
  Tensor y = ctx.zeros({R, D}, DType::BF16);
  ops::moe_grouped_gemm_int4(ctx, y, act, w.down, w.down_scale, offsets);
  return in_dtype(ctx, std::move(y), dtype);
}

Tensor mlp_int4(const Context& ctx, const TensorView& x_in, const TensorView& gate_up, const TensorView& gate_up_scale,
                const TensorView& down, const TensorView& down_scale, DType dtype) {
  const int64_t T = x_in.size(0), I = gate_up.size(0) / 2;
  Tensor xb;
  const TensorView x = as_bf16(ctx, x_in, xb);
  Tensor gu = ctx.empty({T, 2 * I}, DType::BF16);
  ops::linear_int4(ctx, gu, x, gate_up, gate_up_scale);
  Tensor act = ctx.empty({T, I}, DType::BF16);
  ops::silu_gate(ctx, act, columns(gu, 0, I), columns(gu, I, I));
  Tensor y = ctx.empty({T, down.size(0)}, DType::BF16);
  ops::linear_int4(ctx, y, act, down, down_scale);
  return in_dtype(ctx, std::move(y), dtype);
}

}  // namespace llama4::detail
