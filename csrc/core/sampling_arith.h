// The sampler's per-token arithmetic, shared by the CPU kernel (cpu/sampling*.cpp) and its CUDA
// twin (cuda/sampling.cu) so that both compute the same bits (the argument is in
// llama4/sampling.h). Every float/double operation here is a single correctly rounded IEEE
// operation: device code uses the _rn intrinsics (which nvcc never fuses into FMAs), host code
// is compiled with -ffp-contract=off. Nothing here sums over tokens in floating point.
#pragma once
#include <cmath>
#include <cstdint>

#include "llama4/mathfn.h"
#include "llama4/numeric.h"
#include "llama4/sampling.h"

namespace llama4::sampling {

// Correctly rounded double operations shared with the rest of the math (llama4/mathfn.h).
using mathfn_detail::add_d;
using mathfn_detail::div_d;

LLAMA4_HD float f_sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
LLAMA4_HD float f_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
LLAMA4_HD float f_div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
LLAMA4_HD double d_sub(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
LLAMA4_HD double u64_to_d(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __ull2double_rn(u);
#else
  return double(u);  // round to nearest, as the default mode
#endif
}
LLAMA4_HD bool is_finite(float a) { return (f32_to_bits(a) & 0x7F800000u) != 0x7F800000u; }
LLAMA4_HD bool is_neg_inf(float a) { return f32_to_bits(a) == 0xFF800000u; }
LLAMA4_HD float f_abs(float a) { return f32_from_bits(f32_to_bits(a) & 0x7FFFFFFFu); }
// NaN or +inf (what makes a row of logits unusable; -inf is a masked token).
LLAMA4_HD bool is_nan_or_pinf(float a) { return !(a < f32_from_bits(0x7F800000u)) && !is_neg_inf(a); }
LLAMA4_HD float pow2f(int e) { return f32_from_bits(uint32_t(e + 127) << 23); }    // e in [-126, 127]
LLAMA4_HD double pow2d(int e) { return mathfn_detail::d_from_bits(uint64_t(e + 1023) << 52); }

LLAMA4_HD float f_fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
LLAMA4_HD float f_rint(float a) {  // to nearest, ties to even
#if defined(__CUDA_ARCH__)
  return rintf(a);
#else
  return std::rint(a);
#endif
}

// The sampler's weight e^s for s <= 0, in float arithmetic (3x cheaper to vectorize than
// mathfn.h's double-based exp_f32, and as reproducible: the same fmas on every device).
// s = k ln2 + r (Cody-Waite, |r| <= ln2/2), e^r by its Taylor polynomial to r^7, times 2^k.
// Within 1 ulp of e^s (0.94 ulp at worst over 2e7 arguments in [-87, 0]); 0 for s < -87 (those weights are 0 in any fixed point used here:
// e^-87 < 2^-125). e^0 = 1 exactly.
constexpr float kExpLog2e = 0x1.715476p+0f, kExpLn2Hi = 0x1.62e4p-1f, kExpLn2Lo = 0x1.7f7d1cp-20f;
constexpr float kExpC7 = 0x1.a01a02p-13f, kExpC6 = 0x1.6c16c2p-10f, kExpC5 = 0x1.111112p-7f,
                kExpC4 = 0x1.555556p-5f, kExpC3 = 0x1.555556p-3f;
constexpr float kExpMin = -87.0f;
LLAMA4_HD float exp_weight(float s) {
  if (!(s >= kExpMin)) return 0.0f;  // also -inf
  const float k = f_rint(f_mul(s, kExpLog2e));
  float r = f_fma(k, -kExpLn2Hi, s);
  r = f_fma(k, -kExpLn2Lo, r);
  float p = kExpC7;
  p = f_fma(p, r, kExpC6);
  p = f_fma(p, r, kExpC5);
  p = f_fma(p, r, kExpC4);
  p = f_fma(p, r, kExpC3);
  p = f_fma(p, r, 0.5f);
  p = f_fma(p, r, 1.0f);
  p = f_fma(p, r, 1.0f);
  return f_mul(p, f32_from_bits(uint32_t(int(k) + 127) << 23));  // k in [-126, 0]
}

// Fraction bits of the fixed-point weights: V * 2^F <= 2^63, so no sum of weights overflows.
LLAMA4_HD int fixed_bits(int64_t vocab) {
  int ceil_log2 = 0;
  while ((int64_t(1) << ceil_log2) < vocab) ++ceil_log2;
  return 63 - ceil_log2;
}
// floor(w * 2^F) for w in [0, 1]: exact (the product only moves the exponent).
LLAMA4_HD uint64_t fixed_weight(float w, int F) {
  return static_cast<uint64_t>(mathfn_detail::mul_d(double(w), pow2d(F)));
}
// Tokens with s < live_cut(F) have w < 2^-F / e, so W = 0: they can never be drawn.
LLAMA4_HD float live_cut(int F) {
  return float(-mathfn_detail::fma_d(double(F), mathfn_detail::kLn2Hi, 1.0));
}
// Coarse order bucket of a live token: 1/8 nat wide, 0 at the best token; 255 = not live.
constexpr int kDeadBucket = 255;
LLAMA4_HD int bucket_of(float s, float cut) {
  if (!(s >= cut)) return kDeadBucket;
  const int b = int(f_mul(s, -8.0f));  // exact scaling, truncation toward zero
  return b < 254 ? b : 254;
}

// A key whose unsigned order is the order of the floats (-0 and +0 equal; no NaN reaches it).
LLAMA4_HD uint32_t order_key(float y) {
  const uint32_t u = f32_to_bits(y == 0.0f ? 0.0f : y);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The penalties of one token (vLLM's order: repetition, then frequency, then presence).
LLAMA4_HD float penalize(float y, const SamplerRow& row, int32_t count, bool in_prompt) {
  if (row.repetition_penalty != 1.0f && (in_prompt || count > 0))
    y = y > 0.0f ? f_div(y, row.repetition_penalty) : f_mul(y, row.repetition_penalty);
  if (count > 0) {
    y = f_sub(y, f_mul(float(count), row.frequency_penalty));
    y = f_sub(y, row.presence_penalty);
  }
  return y;
}

// Scaled logit s = (y - max) / T (<= 0; -inf for y = -inf).
LLAMA4_HD float scaled_logit(float y, float max_y, float temperature) {
  return f_div(f_sub(y, max_y), temperature);
}

// Greedy when T == 0, or when y / T overflows for the finite logit of largest magnitude.
LLAMA4_HD bool effectively_greedy(float temperature, float max_y, float min_finite_y) {
  if (temperature == 0.0f) return true;
  const float a = f_abs(max_y) > f_abs(min_finite_y) ? f_abs(max_y) : f_abs(min_finite_y);
  return !is_finite(f_div(a, temperature));
}

// Top-p threshold on the exact mass and its test: keep a token while the mass before it is below.
LLAMA4_HD double top_p_threshold(float top_p, uint64_t mass) {
  return mathfn_detail::mul_d(double(top_p), u64_to_d(mass));
}
LLAMA4_HD bool mass_reached(uint64_t cum, double threshold) { return u64_to_d(cum) >= threshold; }

// Target of the inverse-CDF draw: floor(u * total / 2^64), uniform in [0, total).
LLAMA4_HD uint64_t draw_target(uint64_t u, uint64_t total) {
  uint64_t hi, lo;
  mathfn_detail::mul_u64(u, total, &hi, &lo);
  return hi;
}

// Natural log of a finite x >= 1 (the scaled sum of weights), to about 1e-16: x = 2^e * m with
// m in [sqrt(1/2), sqrt(2)), f = (m - 1) / (m + 1), ln m = 2 atanh f as an odd series in f.
LLAMA4_HD double log_d(double x) {
  using namespace mathfn_detail;
  uint64_t bits;
#if defined(__CUDA_ARCH__)
  bits = static_cast<uint64_t>(__double_as_longlong(x));
#else
  std::memcpy(&bits, &x, 8);
#endif
  int e = int((bits >> 52) & 0x7FF) - 1023;
  double m = d_from_bits((bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);  // [1, 2)
  if (m > 0x1.6a09e667f3bcdp+0) {  // sqrt(2)
    m = mul_d(m, 0.5);
    ++e;
  }
  const double f = div_d(d_sub(m, 1.0), add_d(m, 1.0));  // m - 1 is exact (Sterbenz)
  const double f2 = mul_d(f, f);
  double p = 1.0 / 23;
  p = fma_d(p, f2, 1.0 / 21);
  p = fma_d(p, f2, 1.0 / 19);
  p = fma_d(p, f2, 1.0 / 17);
  p = fma_d(p, f2, 1.0 / 15);
  p = fma_d(p, f2, 1.0 / 13);
  p = fma_d(p, f2, 1.0 / 11);
  p = fma_d(p, f2, 1.0 / 9);
  p = fma_d(p, f2, 1.0 / 7);
  p = fma_d(p, f2, 1.0 / 5);
  p = fma_d(p, f2, 1.0 / 3);
  const double two_f = mul_d(f, 2.0);
  const double lnm = fma_d(mul_d(two_f, f2), p, two_f);  // 2f + 2f^3 P(f^2)
  return fma_d(double(e), kLn2Hi, fma_d(double(e), kLn2Lo, lnm));
}

// log of the softmax normalizer relative to the max: ln(sum_i exp(x_i - max)) from the exact
// fixed-point sum S = sum_i floor(exp(x_i - max) * 2^F) >= 2^F.
LLAMA4_HD double log_normalizer(uint64_t fixed_sum, int F) {
  return log_d(mathfn_detail::mul_d(u64_to_d(fixed_sum), pow2d(-F)));
}
// The raw logprob of a logit x: (x - max) - ln(sum), rounded once to float.
LLAMA4_HD float raw_logprob(float x, float max_x, double log_norm) {
  return float(d_sub(double(f_sub(x, max_x)), log_norm));
}

}  // namespace llama4::sampling
