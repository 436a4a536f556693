// The per-row e4m3 quantization arithmetic of quantize_fp8_rowwise (FBGEMM quantize_fp8_per_row,
// cpu/quant.cpp), shared by the CUDA kernels that quantize rows (cuda/quant.cu, cuda/moe_quant.cu)
// so that they round exactly as the CPU does:
//   inv = 448 / clamp(amax, 1e-12, scale_ub if > 0);  q = e4m3(clamp(x * inv, -448, 448));
//   scale = 1 / inv.   amax is the row's NaN-propagating max |x| (reduce.cuh MaxNanOp).
#pragma once
#include "llama4/numeric.h"

namespace llama4::cuda {

constexpr float kFp8AmaxEps = 1e-12f;  // as cpu/quant.cpp

// std::max(amax, eps) and std::min(amax, ub) exactly: they keep a NaN amax (fmaxf would not).
__device__ __forceinline__ float fp8_inverse_scale(float amax, float scale_ub) {
  amax = amax < kFp8AmaxEps ? kFp8AmaxEps : amax;
  if (scale_ub > 0.f) amax = scale_ub < amax ? scale_ub : amax;
  return __fdiv_rn(kFp8E4M3Max, amax);
}

// std::min(std::max(x * inv, -448), 448) exactly (a NaN passes through; fminf would drop it).
__device__ __forceinline__ fp8e4m3 fp8_quantize(float x, float inv) {
  const float y = __fmul_rn(x, inv);
  const float lo = y < -kFp8E4M3Max ? -kFp8E4M3Max : y;
  return fp8e4m3{f32_to_fp8e4m3(kFp8E4M3Max < lo ? kFp8E4M3Max : lo)};
}

}  // namespace llama4::cuda
