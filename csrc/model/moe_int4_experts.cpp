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
}  // namespace

Tensor moe_int4_experts(const Context& ctx, const LayerWeights& w, const TensorView& x_perm,
                        const TensorView& offsets, DType dtype) {
  const int64_t R = x_perm.size(0), D = x_perm.size(1), I = w.gate_up.size(1) / 2;
  Tensor xb;
  TensorView x = x_perm;
  if (dtype != DType::BF16) {
    xb = ctx.empty({R, D}, DType::BF16);
    ops::cast(ctx, xb, x_perm);
    x = xb.view();
  }
  Tensor gu = ctx.zeros({R, 2 * I}, DType::BF16);
  ops::moe_grouped_gemm_int4(ctx, gu, x, w.gate_up, w.gate_up_scale, offsets);
  Tensor act = ctx.empty({R, I}, DType::BF16);
  ops::silu_gate(ctx, act, columns(gu, 0, I), columns(gu, I, I));
  Tensor y = ctx.zeros({R, D}, DType::BF16);
  ops::moe_grouped_gemm_int4(ctx, y, act, w.down, w.down_scale, offsets);
  if (dtype == DType::BF16) return y;
  Tensor out = ctx.empty({R, D}, dtype);
  ops::cast(ctx, out, y);  // widening is exact
  return out;
}

}  // namespace llama4::detail
