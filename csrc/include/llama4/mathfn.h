// exp, sin/cos and log1p of a float, computed the same way on the host and on a CUDA device, so
// the CPU and CUDA kernels that use them (SiLU, RoPE, attention temperature) agree bit for bit. The C library and CUDA's libdevice
// each round correctly most of the time, but not always the same way: glibc's sincosf disagrees
// with the correctly rounded result on about 1% of RoPE angles, and CUDA's sinf/cosf/expf carry up
// to 2 ulp of error. So neither backend calls them for these ops.
//
// How: the float argument is widened to double, reduced, and evaluated with Taylor polynomials
// accurate to about 2^-50, then rounded to float once. That gives the correctly rounded result
// except when the exact value lies within ~2^-26 ulp of a rounding midpoint, and, above all, the
// same bits everywhere: every multiply-add is an explicit fma, plain products never feed an
// addition (so no compiler may contract them differently), and device code uses the _rn
// intrinsics, which nvcc never fuses.
//
// Contracts: exp_f32(x) for any float (overflow -> +inf, underflow -> 0, NaN -> NaN);
// sincos_f32(x) for any finite float (inf/NaN -> NaN); log1p_f32(x) for x >= 0 (+inf -> +inf,
// NaN -> NaN). Large arguments (|x| >= 2^28) are reduced
// exactly with 96 bits of 2/pi (Payne-Hanek), so accuracy does not depend on the magnitude.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "llama4/numeric.h"

namespace llama4 {

namespace mathfn_detail {

LLAMA4_HD double fma_d(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
LLAMA4_HD double mul_d(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
LLAMA4_HD double add_d(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
LLAMA4_HD double div_d(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
LLAMA4_HD double rint_d(double a) {  // round half to even, as both rint()s do in the default mode
#if defined(__CUDA_ARCH__)
  return rint(a);
#else
  return std::rint(a);
#endif
}
LLAMA4_HD double d_from_bits(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double d;
  std::memcpy(&d, &u, 8);
  return d;
#endif
}
LLAMA4_HD uint64_t d_to_bits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
#endif
}
// High and low 64 bits of a 64 x 64-bit product.
LLAMA4_HD void mul_u64(uint64_t a, uint64_t b, uint64_t* hi, uint64_t* lo) {
#if defined(__CUDA_ARCH__)
  *hi = __umul64hi(a, b);
  *lo = a * b;
#else
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  *hi = uint64_t(p >> 64);
  *lo = uint64_t(p);
#endif
}

// pi/2 = kPio2_1 + kPio2_2 + kPio2_3 to about 160 bits; ln 2 = kLn2Hi + kLn2Lo.
constexpr double kPio2_1 = 0x1.921fb54442d18p+0;
constexpr double kPio2_2 = 0x1.1a62633145c07p-54;
constexpr double kPio2_3 = -0x1.f1976b7ed8fbcp-110;
constexpr double kTwoOverPi = 0x1.45f306dc9c883p-1;
constexpr double kLn2Hi = 0x1.62e42fefa39efp-1;
constexpr double kLn2Lo = 0x1.abc9e3b39803fp-56;
constexpr double kInvLn2 = 0x1.71547652b82fep+0;

// Reduces a finite x to r in about [-pi/4, pi/4] and the quadrant q (x = r + q*pi/2 mod 2pi).
LLAMA4_HD double reduce_pio2(float x, int* q) {
  const double xd = x;
  if ((f32_to_bits(x) & 0x7FFFFFFFu) < 0x4D800000u) {  // |x| < 2^28
    // Cody-Waite with a three-part pi/2: each fma rounds once, relative to a small result.
    const double kd = rint_d(mul_d(xd, kTwoOverPi));
    double r = fma_d(-kd, kPio2_1, xd);
    r = fma_d(-kd, kPio2_2, r);
    r = fma_d(-kd, kPio2_3, r);
    *q = int(static_cast<int64_t>(kd) & 3);
    return r;
  }
  // Payne-Hanek: |x| = m * 2^e with a 24-bit integer m and e >= 5. Only the bits of 2/pi from
  // weight 2^(1-e) on matter modulo 4 quarter turns; take 96 of them as W, then m*W*2^-94 is
  // x*2/pi mod 4: integer part = quadrant, fraction = r in quarter turns.
  const uint32_t kTwoOverPiBits[8] = {0xA2F9836E, 0x4E441529, 0xFC2757D1, 0xF534DDC0,
                                      0xDB629599, 0x3C439041, 0xFE5163AB, 0xDEBBC561};
  const uint32_t bits = f32_to_bits(x);
  const int e = int((bits >> 23) & 0xFFu) - 150;
  const uint64_t m = (bits & 0x7FFFFFu) | 0x800000u;
  const int o = e - 2;  // zero-based index of the first 2/pi bit needed (bit 0 has weight 2^-1)
  const int w = o >> 5, b = o & 31;
  const uint64_t a0 = (uint64_t(kTwoOverPiBits[w]) << 32) | kTwoOverPiBits[w + 1];
  const uint64_t a1 = (uint64_t(kTwoOverPiBits[w + 2]) << 32) | kTwoOverPiBits[w + 3];
  const uint64_t w_hi = b ? (a0 << b) | (a1 >> (64 - b)) : a0;  // W bits 95..32
  const uint64_t w_lo = uint32_t((a1 << b) >> 32);                // W bits 31..0
  uint64_t mh, ml;
  mul_u64(m, w_hi, &mh, &ml);
  // P = m*W = (mh:ml) << 32 + m*w_lo, 120 bits in (p_hi:p_lo).
  uint64_t p_hi = (mh << 32) | (ml >> 32);
  uint64_t p_lo = ml << 32;
  const uint64_t c = m * w_lo;
  p_lo += c;
  p_hi += p_lo < c;
  const uint64_t frac = (p_hi << 34) | (p_lo >> 30);  // top 64 bits of the 94-bit fraction
  int quad = int((p_hi >> 30) & 3) + int(frac >> 63);  // round to the nearest quadrant
  // As a signed number, frac is the fraction minus one when it was rounded up.
  const double rq = mul_d(double(static_cast<int64_t>(frac)), 0x1p-64);
  double r = mul_d(rq, kPio2_1);
  if (bits >> 31) {
    r = -r;
    quad = -quad;
  }
  *q = quad & 3;
  return r;
}

}  // namespace mathfn_detail

// e^x rounded to float. x = k*ln2 + r with |r| <= ln2/2; e^r by its Taylor series to r^12
// (truncation < 2^-52); the result is scaled by 2^k in double and rounded once.
LLAMA4_HD float exp_f32(float x) {
  using namespace mathfn_detail;
  if (x != x) return f32_from_bits(0x7FC00000u);
  if (x > 100.0f) return f32_from_bits(0x7F800000u);  // e^89 already overflows float
  if (x < -110.0f) return 0.0f;                       // e^-104 already rounds to zero
  const double xd = x;
  const double kd = rint_d(mul_d(xd, kInvLn2));
  double r = fma_d(-kd, kLn2Hi, xd);
  r = fma_d(-kd, kLn2Lo, r);
  double p = 0x1.1eed8eff8d898p-29;  // 1/12!
  p = fma_d(p, r, 0x1.ae64567f544e4p-26);  // 1/11!
  p = fma_d(p, r, 0x1.27e4fb7789f5cp-22);  // 1/10!
  p = fma_d(p, r, 0x1.71de3a556c734p-19);  // 1/9!
  p = fma_d(p, r, 0x1.a01a01a01a01ap-16);  // 1/8!
  p = fma_d(p, r, 0x1.a01a01a01a01ap-13);  // 1/7!
  p = fma_d(p, r, 0x1.6c16c16c16c17p-10);  // 1/6!
  p = fma_d(p, r, 0x1.1111111111111p-7);   // 1/5!
  p = fma_d(p, r, 0x1.5555555555555p-5);   // 1/4!
  p = fma_d(p, r, 0x1.5555555555555p-3);   // 1/3!
  p = fma_d(p, r, 0.5);
  p = fma_d(p, r, 1.0);
  p = fma_d(p, r, 1.0);
  const int k = int(kd);  // in [-159, 145]: 2^k is a normal double
  return float(mul_d(p, d_from_bits(uint64_t(k + 1023) << 52)));
}

// sin(x) and cos(x) rounded to float. sin(r) to r^15 and cos(r) to r^16 on |r| <= pi/4
// (truncation < 2^-54), then the quadrant picks and negates.
LLAMA4_HD void sincos_f32(float x, float* sin_out, float* cos_out) {
  using namespace mathfn_detail;
  if ((f32_to_bits(x) & 0x7FFFFFFFu) >= 0x7F800000u) {  // inf or NaN
    *sin_out = *cos_out = f32_from_bits(0x7FC00000u);
    return;
  }
  if (x == 0.0f) {  // keeps the sign of zero, which the reduction's fma would lose for -0
    *sin_out = x;
    *cos_out = 1.0f;
    return;
  }
  int q;
  const double r = reduce_pio2(x, &q);
  const double r2 = mul_d(r, r);
  double ps = -0x1.ae7f3e733b81fp-41;  // -1/15!
  ps = fma_d(ps, r2, 0x1.6124613a86d09p-33);   // 1/13!
  ps = fma_d(ps, r2, -0x1.ae64567f544e4p-26);  // -1/11!
  ps = fma_d(ps, r2, 0x1.71de3a556c734p-19);   // 1/9!
  ps = fma_d(ps, r2, -0x1.a01a01a01a01ap-13);  // -1/7!
  ps = fma_d(ps, r2, 0x1.1111111111111p-7);    // 1/5!
  ps = fma_d(ps, r2, -0x1.5555555555555p-3);   // -1/3!
  const double s = fma_d(mul_d(r, r2), ps, r);
  double pc = -0x1.ae7f3e733b81fp-45;  // -1/16!
  pc = fma_d(pc, r2, 0x1.93974a8c07c9dp-37);   // 1/14!
  pc = fma_d(pc, r2, -0x1.1eed8eff8d898p-29);  // -1/12!
  pc = fma_d(pc, r2, 0x1.27e4fb7789f5cp-22);   // 1/10!
  pc = fma_d(pc, r2, -0x1.a01a01a01a01ap-16);  // -1/8!
  pc = fma_d(pc, r2, 0x1.6c16c16c16c17p-10);   // 1/6!
  pc = fma_d(pc, r2, -0x1.5555555555555p-5);   // -1/4!
  pc = fma_d(pc, r2, 0.5);
  const double c = fma_d(-r2, pc, 1.0);  // 1 - r^2/2 + r^4/4! - ...
  switch (q) {
    case 0: *sin_out = float(s); *cos_out = float(c); break;
    case 1: *sin_out = float(c); *cos_out = float(-s); break;
    case 2: *sin_out = float(-s); *cos_out = float(-c); break;
    default: *sin_out = float(-c); *cos_out = float(s); break;
  }
}

// log(1 + x) rounded to float, for x >= 0. log(1 + x) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...):
// for x < 1/2 with s = x / (2 + x) (s <= 1/5); otherwise 1 + x (exact in double for every float
// x < 2^53) = m 2^e with m in [sqrt(1/2), sqrt(2)), s = (m - 1) / (m + 1) (|s| < 0.172), and
// e ln 2 is added. The series to s^25 leaves a truncation below 2^-54 in both cases.
LLAMA4_HD float log1p_f32(float x) {
  using namespace mathfn_detail;
  if (x != x) return x;
  if (x == 0.0f) return x;
  if (f32_to_bits(x) == 0x7F800000u) return x;  // +inf
  const double xd = x;
  double s, e = 0.0;
  if (x < 0.5f) {
    s = div_d(xd, add_d(2.0, xd));
  } else {
    const double u = add_d(1.0, xd);
    const uint64_t bits = d_to_bits(u);
    int ex = int((bits >> 52) & 0x7FF) - 1023;
    double m = d_from_bits((bits & 0x000FFFFFFFFFFFFFull) | (uint64_t(1023) << 52));  // [1, 2)
    if (m > 0x1.6a09e667f3bcdp+0) {  // sqrt(2): halve m (exact), bump the exponent
      m = d_from_bits((bits & 0x000FFFFFFFFFFFFFull) | (uint64_t(1022) << 52));
      ex += 1;
    }
    s = div_d(add_d(m, -1.0), add_d(m, 1.0));
    e = double(ex);
  }
  const double s2 = mul_d(s, s);
  double p = 0x1.47ae147ae147bp-5;     // 1/25
  p = fma_d(p, s2, 0x1.642c8590b2164p-5);  // 1/23
  p = fma_d(p, s2, 0x1.8618618618618p-5);  // 1/21
  p = fma_d(p, s2, 0x1.af286bca1af28p-5);  // 1/19
  p = fma_d(p, s2, 0x1.e1e1e1e1e1e1ep-5);  // 1/17
  p = fma_d(p, s2, 0x1.1111111111111p-4);  // 1/15
  p = fma_d(p, s2, 0x1.3b13b13b13b14p-4);  // 1/13
  p = fma_d(p, s2, 0x1.745d1745d1746p-4);  // 1/11
  p = fma_d(p, s2, 0x1.c71c71c71c71cp-4);  // 1/9
  p = fma_d(p, s2, 0x1.2492492492492p-3);  // 1/7
  p = fma_d(p, s2, 0x1.999999999999ap-3);  // 1/5
  p = fma_d(p, s2, 0x1.5555555555555p-2);  // 1/3
  const double log_m = mul_d(2.0, fma_d(mul_d(s, s2), p, s));  // 2 (s + s^3 p); x2 is exact
  return float(fma_d(e, kLn2Hi, fma_d(e, kLn2Lo, log_m)));
}

// Llama 4's attention temperature of a query at position `pos` (NoPE layers), in transformers'
// fp32 order of operations: log1p(floor((pos + 1) / floor_scale)) * attn_scale + 1, each step
// rounded to float (no fused multiply-add, as torch's separate kernels compute it).
LLAMA4_HD float attention_temperature(int64_t pos, float attn_scale, float floor_scale) {
#if defined(__CUDA_ARCH__)
  const float k = floorf(__fdiv_rn(__fadd_rn(float(pos), 1.0f), floor_scale));
  return __fadd_rn(__fmul_rn(log1p_f32(k), attn_scale), 1.0f);
#else
  const float k = std::floor((float(pos) + 1.0f) / floor_scale);
  // The product is exact in double; rounding it to float gives the float product, and the
  // conversion keeps the compiler from contracting it with the addition into an fma.
  const float prod = float(double(log1p_f32(k)) * double(attn_scale));
  return prod + 1.0f;
#endif
}

}  // namespace llama4
