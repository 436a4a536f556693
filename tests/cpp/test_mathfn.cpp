// llama4/mathfn.h: exp_f32, sincos_f32 and log1p_f32 against the double-precision C library
// rounded to float (correctly rounded for these inputs), on a strided sweep of all floats plus the
// edge cases; log1p_f32 also on every whole number up to 2^20 (the attention temperature takes
// log1p of floor((pos + 1) / floor_scale)). log1p_f32 is correctly rounded there; glibc's log1pf is
// not on 0.9% of those numbers and torch's CPU log1p on 0.04%, which is why both backends use ours. The kernels rely on these being exact; the exhaustive runs made when the header was
// written found no mismatch (all 2^32 inputs of exp, all |x| < 2^28 of sin/cos).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>

#include "llama4/mathfn.h"

namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

int failures = 0;

void expect_same(const char* what, float x, float got, float want) {
  if (bits(got) == bits(want) || (std::isnan(got) && std::isnan(want))) return;
  if (++failures <= 10) std::printf("%s(%a): got %a, want %a\n", what, x, got, want);
}

}  // namespace

int main() {
  // About 43 million inputs: every 97th bit pattern, both signs, all exponents.
  for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 97) {
    const float x = from_bits(uint32_t(u));
    expect_same("exp", x, llama4::exp_f32(x), float(std::exp(double(x))));
    if (!std::isfinite(x)) continue;
    float s, c;
    llama4::sincos_f32(x, &s, &c);
    expect_same("sin", x, s, float(std::sin(double(x))));
    expect_same("cos", x, c, float(std::cos(double(x))));
  }
  for (uint64_t u = 0; u < 0x7F800000ull; u += 61) {  // every 61st non-negative finite float
    const float x = from_bits(uint32_t(u));
    expect_same("log1p", x, llama4::log1p_f32(x), float(std::log1p(double(x))));
  }
  // floor((pos + 1) / 8192) for every int32 position, and far beyond (floor_scale may be small).
  for (int k = 0; k <= (1 << 20); ++k) {
    const float x = float(k);
    expect_same("log1p", x, llama4::log1p_f32(x), float(std::log1p(double(x))));
  }
  const float edges[] = {0.0f, -0.0f, 1e-45f, 88.72283f, 88.72284f, -103.97f, -104.0f,
                         0x1p28f, -0x1p28f, 0x1.fffffep27f, 3.0e9f, 1e38f, 0x1.fffffep127f};
  for (float x : edges) {
    expect_same("exp", x, llama4::exp_f32(x), float(std::exp(double(x))));
    float s, c;
    llama4::sincos_f32(x, &s, &c);
    expect_same("sin", x, s, float(std::sin(double(x))));
    expect_same("cos", x, c, float(std::cos(double(x))));
  }
  float s, c;
  llama4::sincos_f32(-0.0f, &s, &c);
  if (!(std::signbit(s) && c == 1.0f)) ++failures, std::printf("sincos(-0) lost the sign\n");
  llama4::sincos_f32(from_bits(0x7F800000u), &s, &c);
  if (!(std::isnan(s) && std::isnan(c))) ++failures, std::printf("sincos(inf) is not NaN\n");
  if (!std::isnan(llama4::exp_f32(std::nanf("")))) ++failures, std::printf("exp(NaN)\n");
  if (!std::isnan(llama4::log1p_f32(std::nanf("")))) ++failures, std::printf("log1p(NaN)\n");
  if (llama4::log1p_f32(from_bits(0x7F800000u)) != from_bits(0x7F800000u))
    ++failures, std::printf("log1p(inf)\n");
  for (float x : {0.0f, 0.5f, 1.0f, 0x1.6a09e6p+0f, 1e30f, 1e-30f, 0x1p-149f})
    expect_same("log1p", x, llama4::log1p_f32(x), float(std::log1p(double(x))));
  // The temperature: exactly 1 below position floor_scale - 1, then 1 + a log(2) ...
  const float t0 = llama4::attention_temperature(8190, 0.1f, 8192.0f);
  const float t1 = llama4::attention_temperature(8191, 0.1f, 8192.0f);
  if (t0 != 1.0f) ++failures, std::printf("temperature(8190) = %a, want 1\n", t0);
  const float want1 = float(double(float(std::log1p(1.0))) * double(0.1f)) + 1.0f;
  if (bits(t1) != bits(want1)) ++failures, std::printf("temperature(8191) = %a, want %a\n", t1, want1);
  if (failures) std::printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
