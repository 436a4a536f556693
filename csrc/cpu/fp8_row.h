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
#include "cpu/vec8.h"

namespace llama4::cpu {

constexpr float kAmaxEps = 1e-12f;

// Quantizes x[0, K) (any activation type) into q and returns the row's scale. float and bf16 go
// eight at a time (cpu/vec8.h): the max is order-free, and each code is the scalar code's.
template <typename T>
inline float quantize_fp8_row(const T* x, int64_t K, float scale_ub, uint8_t* q) {
  using E = Elem<T>;
  float amax = 0.f;
  bool has_nan = false;  // std::max drops NaN, but torch's amax (the reference) propagates it
  int64_t k0 = 0;
#if LLAMA4_VEC8
  if constexpr (vec8::kVec8<T>) {
    __m256 m = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (; k0 + 8 <= K; k0 += 8) {
      const __m256 a = _mm256_and_ps(vec8::load(x + k0), abs_mask);
      m = _mm256_max_ps(a, m);  // a NaN lane keeps m (the second operand), as std::max drops it
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m);
    for (float l : lanes) amax = std::max(amax, l);
    has_nan = _mm256_movemask_ps(nan) != 0;
  }
#endif
  for (int64_t k = k0; k < K; ++k) {
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
  int64_t j0 = 0;
#if LLAMA4_VEC8
  if constexpr (vec8::kVec8<T>) {
    const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-kFp8E4M3Max), hi = _mm256_set1_ps(kFp8E4M3Max);
    for (; j0 + 8 <= K; j0 += 8)  // max/min with the product second: a NaN product passes through
      vec8::store_e4m3(q + j0, _mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_mul_ps(vec8::load(x + j0), vinv))));
  }
#endif
  for (int64_t k = j0; k < K; ++k) {
    const float v = std::min(std::max(E::load(x, k) * inv, -kFp8E4M3Max), kFp8E4M3Max);
    q[k] = f32_to_fp8e4m3(v);
  }
  return 1.0f / inv;
}

}  // namespace llama4::cpu
