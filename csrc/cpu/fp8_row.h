// The per-row e4m3 quantization arithmetic of quantize_fp8_rowwise (FBGEMM quantize_fp8_per_row),
// shared by the CPU kernels that quantize rows (cpu/quant.cpp, the FP8 KV cache writes in
// cpu/paged_attention.cpp); cuda/fp8_rowwise.cuh is its CUDA twin:
//   inv = 448 / clamp(amax, 1e-12, scale_ub if > 0);  q = e4m3(clamp(x * inv, -448, 448));
//   scale = 1 / inv.   amax is the row's max |x|, NaN if the row holds a NaN (as torch's amax).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/elem.h"

namespace llama4::cpu {

constexpr float kAmaxEps = 1e-12f;

// Quantizes x[0, K) (any activation type) into q and returns the row's scale.
template <typename T>
inline float quantize_fp8_row(const T* x, int64_t K, float scale_ub, uint8_t* q) {
  using E = Elem<T>;
  float amax = 0.f;
  bool has_nan = false;  // std::max drops NaN, but torch's amax (the reference) propagates it
  for (int64_t k = 0; k < K; ++k) {
    const float a = std::fabs(E::load(x, k));
    amax = std::max(amax, a);
    has_nan |= a != a;
  }
  // A NaN makes the whole row and its scale NaN, as in the torch formulation of FBGEMM's
  // quantize_fp8_per_row. std::max/min return their first argument when it is NaN: it survives.
  if (has_nan) amax = std::numeric_limits<float>::quiet_NaN();
  amax = std::max(amax, kAmaxEps);
  if (scale_ub > 0.f) amax = std::min(amax, scale_ub);
  const float inv = kFp8E4M3Max / amax;
  for (int64_t k = 0; k < K; ++k) {
    const float v = std::min(std::max(E::load(x, k) * inv, -kFp8E4M3Max), kFp8E4M3Max);
    q[k] = f32_to_fp8e4m3(v);
  }
  return 1.0f / inv;
}

}  // namespace llama4::cpu
