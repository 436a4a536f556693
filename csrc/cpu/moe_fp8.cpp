// CPU MoE block with FP8 routed experts: route -> permute (inputs scaled by the router score) ->
// quantize per row -> grouped GEMM gate_up -> SiLU-gate (bf16) and re-quantize -> grouped GEMM
// down -> un-permute, summed per token and added to the shared expert. The step list and every
// rounding are the contract in llama4/moe_fp8.h; the CUDA pipeline (cuda/moe_fp8.cu) runs the
// same steps on the device.
#include "cpu/moe_fp8.h"

#include "cpu/moe_gemm_fp8.h"
#include "cpu/moe_routing.h"
#include "cpu/quant.h"
#include "llama4/mathfn.h"
#include "llama4/numeric.h"

namespace llama4::cpu {

namespace {

// h[r, j] = bf16(bf16(silu(g)) * u) with g = gu[r, j], u = gu[r, I + j]: cpu/norm_rope.cpp's
// silu_gate arithmetic (SiLU rounds before the product) on the two halves of the GEMM output.
void silu_gate_rows(uint16_t* h, const uint16_t* gu, int64_t R, int64_t I) {
#pragma omp parallel for schedule(static) if (R * I > 65536)
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t j = 0; j < I; ++j) {
      const float g = bf16_to_f32(gu[r * 2 * I + j]), u = bf16_to_f32(gu[r * 2 * I + I + j]);
      const float act = round_bf16(g / (1.0f + exp_f32(-g)));
      h[r * I + j] = f32_to_bf16(act * u);
    }
  }
}

}  // namespace

void moe_fp8(const TensorView& out, const TensorView& x, const TensorView& router_logits,
             const TensorView& shared, const ops::MoeFp8Experts& ex, int64_t top_k, float scale_ub) {
  const int64_t T = x.size(0), D = x.size(1), E = ex.gate_up.size(0), I = ex.down.size(2);
  const int64_t R = T * top_k;
  const Device cpu = Device::cpu();
  Tensor ids = Tensor::empty({T, top_k}, DType::I32, cpu);
  Tensor scores = Tensor::empty({T, top_k}, x.dtype, cpu);
  moe_route(ids, scores, router_logits);

  Tensor xs = Tensor::empty({R, D}, x.dtype, cpu);
  Tensor perm_token = Tensor::empty({R}, DType::I32, cpu), perm_slot = Tensor::empty({R}, DType::I32, cpu);
  Tensor offsets = Tensor::empty({E + 1}, DType::I32, cpu);
  moe_permute(xs, perm_token, perm_slot, offsets, x, ids, scores);

  Tensor a = Tensor::empty({R, D}, DType::F8E4M3, cpu), a_scale = Tensor::empty({R}, DType::F32, cpu);
  quantize_fp8_rowwise(a, a_scale, xs, scale_ub);
  Tensor gu = Tensor::empty({R, 2 * I}, DType::BF16, cpu);
  moe_grouped_gemm_fp8(gu, a, a_scale, ex.gate_up, ex.gate_up_scale, offsets);

  Tensor h = Tensor::empty({R, I}, DType::BF16, cpu);
  silu_gate_rows(h.ptr<uint16_t>(), gu.ptr<uint16_t>(), R, I);
  Tensor hq = Tensor::empty({R, I}, DType::F8E4M3, cpu), h_scale = Tensor::empty({R}, DType::F32, cpu);
  quantize_fp8_rowwise(hq, h_scale, h, scale_ub);
  Tensor y = Tensor::empty({R, D}, DType::BF16, cpu);
  moe_grouped_gemm_fp8(y, hq, h_scale, ex.down, ex.down_scale, offsets);

  // The expert outputs are bf16; an fp32 model sums them in fp32 (widening is exact).
  Tensor y_model = y;
  if (x.dtype != DType::BF16) {
    y_model = Tensor::empty({R, D}, x.dtype, cpu);
    cast(y_model, y);
  }
  moe_unpermute(out, y_model, perm_slot, shared);
}

}  // namespace llama4::cpu
