// Scalar conversions between float32 and bfloat16 / float16 / float8_e4m3fn, bit-identical to
// PyTorch's (c10): round-to-nearest-even; NaN stays NaN. float8_e4m3fn has no infinity and, like
// torch's cast since pytorch/pytorch#178817 (the torch 2.13 the tests run against), it SATURATES:
// a finite value that rounds past the max 448 (|x| > 464) and +-inf become +-448; only NaN becomes
// NaN (0x7F/0xFF). Older torch returned NaN for |x| >= 480 and inf. Quantizers clamp to +-448
// before converting, so they agree with either. Usable from host and CUDA device code.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LLAMA4_HD __host__ __device__ __forceinline__
#else
#define LLAMA4_HD inline
#endif

namespace llama4 {

struct bf16 { uint16_t bits; };
struct f16 { uint16_t bits; };
struct fp8e4m3 { uint8_t bits; };

LLAMA4_HD uint32_t f32_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
LLAMA4_HD float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// ---- bfloat16 ----
LLAMA4_HD float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }
LLAMA4_HD uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;  // NaN -> canonical quiet NaN (c10)
  u += 0x7FFFu + ((u >> 16) & 1u);                     // round to nearest even
  return uint16_t(u >> 16);
}
// Round a float to the nearest bf16 value, kept in float.
LLAMA4_HD float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

// ---- float16 (IEEE binary16) ----
LLAMA4_HD float f16_to_f32(uint16_t h) {
  const uint32_t w = uint32_t(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = f32_from_bits(0x7800000u);  // 2^-112
  const float normalized = f32_from_bits((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float magic_bias = 0.5f;
  const float denormalized = f32_from_bits((two_w >> 17) | magic_mask) - magic_bias;
  const uint32_t denormalized_cutoff = 1u << 27;
  const uint32_t result =
      sign | (two_w < denormalized_cutoff ? f32_to_bits(denormalized) : f32_to_bits(normalized));
  return f32_from_bits(result);
}
LLAMA4_HD uint16_t f32_to_f16(float f) {
  const float scale_to_inf = f32_from_bits(0x77800000u);   // 2^112
  const float scale_to_zero = f32_from_bits(0x08800000u);  // 2^-110
  const float abs_f = f32_from_bits(f32_to_bits(f) & 0x7FFFFFFFu);
  float base = (abs_f * scale_to_inf) * scale_to_zero;
  const uint32_t w = f32_to_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = f32_to_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return uint16_t((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// ---- float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa; max 448; 0x7F/0xFF are NaN ----
constexpr float kFp8E4M3Max = 448.0f;

LLAMA4_HD float fp8e4m3_to_f32(uint8_t v) {
  const uint32_t sign = uint32_t(v & 0x80u) << 24;
  const uint32_t exp = (v >> 3) & 0xFu;
  const uint32_t man = v & 0x7u;
  if (exp == 0xFu && man == 0x7u) return f32_from_bits(sign | 0x7FC00000u);  // NaN
  if (exp == 0) {  // subnormal: man * 2^-9
    const float mag = float(man) * f32_from_bits(0x3B000000u);  // 2^-9
    return sign ? -mag : mag;
  }
  return f32_from_bits(sign | ((exp + 120u) << 23) | (man << 20));
}
LLAMA4_HD uint8_t f32_to_fp8e4m3(float f) {
  const uint32_t fp8_max = 1087u << 20;     // bits of 480.0f: first value that rounds past 448
  const uint32_t denorm_mask = 141u << 23;  // bits of 2^14: aligns the subnormal rounding point
  uint32_t bits = f32_to_bits(f);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint8_t result;
  if (bits >= fp8_max) {
    result = bits > 0x7F800000u ? 0x7F : 0x7E;  // NaN stays NaN; inf and finite overflow -> 448
  } else if (bits < (121u << 23)) {  // below 2^-6, the smallest normal: let float addition round
    bits = f32_to_bits(f32_from_bits(bits) + f32_from_bits(denorm_mask));
    result = uint8_t(bits - denorm_mask);
  } else {
    const uint32_t mant_odd = (bits >> 20) & 1u;
    bits += (uint32_t(7 - 127) << 23) + 0x7FFFFu;  // rebias exponent, round half up ...
    bits += mant_odd;                               // ... to even
    result = uint8_t(bits >> 20);
    if (result == 0x7F) result = 0x7E;  // 464 < |x| < 480 rounds into the NaN code: saturate
  }
  return uint8_t(result | (sign >> 24));
}

}  // namespace llama4
