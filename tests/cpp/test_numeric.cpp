// Scalar conversions (llama4/numeric.h) on known values worked out by hand from the formats, and
// exhaustive round trips: every bf16 / f16 pattern and every e4m3 code survives decode -> encode.
// (Bit parity with PyTorch over all patterns is tests/test_numeric.py's job.)
#include <cmath>
#include <cstdint>
#include <limits>

#include "check.h"
#include "llama4/numeric.h"

using namespace llama4;

static float from_bits(uint32_t u) { return f32_from_bits(u); }
static const float kInf = std::numeric_limits<float>::infinity();
static const float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST_CASE(bf16_known_values) {
  CHECK_EQ(f32_to_bf16(1.0f), uint16_t(0x3F80));
  CHECK_EQ(f32_to_bf16(-2.0f), uint16_t(0xC000));
  CHECK_EQ(f32_to_bf16(-0.0f), uint16_t(0x8000));
  CHECK_EQ(f32_to_bf16(kInf), uint16_t(0x7F80));
  CHECK_EQ(f32_to_bf16(-kInf), uint16_t(0xFF80));
  CHECK_EQ(f32_to_bf16(kNaN), uint16_t(0x7FC0));
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7F800001)))));  // signalling NaN stays NaN
  // Ties (low 16 bits exactly 0x8000) go to the even neighbour; anything above goes up.
  CHECK_EQ(f32_to_bf16(from_bits(0x3F808000)), uint16_t(0x3F80));  // 1 + 2^-8: down to even
  CHECK_EQ(f32_to_bf16(from_bits(0x3F818000)), uint16_t(0x3F82));  // up to even
  CHECK_EQ(f32_to_bf16(from_bits(0x3F808001)), uint16_t(0x3F81));  // just above the tie
  CHECK_EQ(f32_to_bf16(from_bits(0x3F807FFF)), uint16_t(0x3F80));  // just below the tie
  // Overflow: the largest float rounds up past bf16's max (0x7F7F) to inf.
  CHECK_EQ(f32_to_bf16(from_bits(0x7F7FFFFF)), uint16_t(0x7F80));
  CHECK_EQ(f32_to_bf16(from_bits(0x7F7F7FFF)), uint16_t(0x7F7F));
  // Denormals round like everything else.
  CHECK_EQ(f32_to_bf16(from_bits(0x00000001)), uint16_t(0x0000));
  CHECK_EQ(f32_to_bf16(from_bits(0x00018000)), uint16_t(0x0002));
  CHECK_SAME_FLOAT(bf16_to_f32(0x3F80), 1.0f);
  CHECK_SAME_FLOAT(round_bf16(1.00390625f), 1.0f);  // 1 + 2^-8 is a tie
}

TEST_CASE(f16_known_values) {
  CHECK_EQ(f32_to_f16(1.0f), uint16_t(0x3C00));
  CHECK_EQ(f32_to_f16(-0.0f), uint16_t(0x8000));
  CHECK_EQ(f32_to_f16(65504.0f), uint16_t(0x7BFF));  // max
  CHECK_EQ(f32_to_f16(65519.0f), uint16_t(0x7BFF));
  CHECK_EQ(f32_to_f16(65520.0f), uint16_t(0x7C00));  // tie between max (odd) and 2^16: inf
  CHECK_EQ(f32_to_f16(kInf), uint16_t(0x7C00));
  CHECK_EQ(f32_to_f16(kNaN), uint16_t(0x7E00));
  CHECK_EQ(f32_to_f16(std::ldexp(1.0f, -24)), uint16_t(0x0001));     // smallest subnormal
  CHECK_EQ(f32_to_f16(std::ldexp(1.0f, -25)), uint16_t(0x0000));     // tie with 0: even
  CHECK_EQ(f32_to_f16(std::ldexp(3.0f, -25)), uint16_t(0x0002));     // tie 1|2: even
  CHECK_EQ(f32_to_f16(std::ldexp(1.0f, -14)), uint16_t(0x0400));     // smallest normal
  CHECK_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), uint16_t(0x3C00));  // tie: down to even
  CHECK_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), uint16_t(0x3C02));  // tie: up to even
  CHECK_SAME_FLOAT(f16_to_f32(0x7BFF), 65504.0f);
  CHECK_SAME_FLOAT(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  CHECK_SAME_FLOAT(f16_to_f32(0x8000), -0.0f);
  CHECK(std::isinf(f16_to_f32(0xFC00)) && f16_to_f32(0xFC00) < 0);
  CHECK(std::isnan(f16_to_f32(0x7C01)));
}

// e4m3fn: bias 7, 3 mantissa bits, max 448 (0x7E), NaN 0x7F/0xFF, no inf; subnormals m * 2^-9.
TEST_CASE(e4m3_known_values) {
  CHECK_EQ(f32_to_fp8e4m3(1.0f), uint8_t(0x38));
  CHECK_EQ(f32_to_fp8e4m3(-1.0f), uint8_t(0xB8));
  CHECK_EQ(f32_to_fp8e4m3(448.0f), uint8_t(0x7E));
  CHECK_EQ(f32_to_fp8e4m3(-448.0f), uint8_t(0xFE));
  CHECK_EQ(f32_to_fp8e4m3(464.0f), uint8_t(0x7E));  // tie 448|480: to even (448)
  // Saturation (torch's cast since pytorch/pytorch#178817): what rounds past 448, and inf, is
  // +-448; the older non-saturating cast gave NaN for 480 and inf. Only NaN gives NaN.
  CHECK_EQ(f32_to_fp8e4m3(465.0f), uint8_t(0x7E));
  CHECK_EQ(f32_to_fp8e4m3(480.0f), uint8_t(0x7E));
  CHECK_EQ(f32_to_fp8e4m3(1e30f), uint8_t(0x7E));
  CHECK_EQ(f32_to_fp8e4m3(kInf), uint8_t(0x7E));
  CHECK_EQ(f32_to_fp8e4m3(-kInf), uint8_t(0xFE));
  CHECK_EQ(f32_to_fp8e4m3(kNaN) & 0x7F, 0x7F);
  CHECK(std::isnan(fp8e4m3_to_f32(f32_to_fp8e4m3(-kNaN))));
  // Rounding in the normal range: 1.0625 is the tie 1|1.125 (to even 1.0), 1.1875 the tie
  // 1.125|1.25 (to even 1.25).
  CHECK_EQ(f32_to_fp8e4m3(1.0625f), uint8_t(0x38));
  CHECK_EQ(f32_to_fp8e4m3(1.1875f), uint8_t(0x3A));
  CHECK_EQ(f32_to_fp8e4m3(8.96f), uint8_t(0x51));  // nearest is 9 = 1.125 * 2^3
  // Subnormals: steps of 2^-9 below 2^-6.
  CHECK_EQ(f32_to_fp8e4m3(std::ldexp(1.0f, -6)), uint8_t(0x08));   // smallest normal
  CHECK_EQ(f32_to_fp8e4m3(std::ldexp(7.0f, -9)), uint8_t(0x07));   // largest subnormal
  CHECK_EQ(f32_to_fp8e4m3(std::ldexp(1.0f, -9)), uint8_t(0x01));   // smallest subnormal
  CHECK_EQ(f32_to_fp8e4m3(std::ldexp(1.0f, -10)), uint8_t(0x00));  // tie 0|2^-9: even (0)
  CHECK_EQ(f32_to_fp8e4m3(std::ldexp(3.0f, -10)), uint8_t(0x02));  // tie 1|2 (x 2^-9): even
  CHECK_EQ(f32_to_fp8e4m3(std::ldexp(1.0f, -11)), uint8_t(0x00));  // flushes to zero
  CHECK_EQ(f32_to_fp8e4m3(-std::ldexp(1.0f, -11)), uint8_t(0x80));  // ... keeping the sign
  // Decoding.
  CHECK_SAME_FLOAT(fp8e4m3_to_f32(0x7E), 448.0f);
  CHECK_SAME_FLOAT(fp8e4m3_to_f32(0xFE), -448.0f);
  CHECK_SAME_FLOAT(fp8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  CHECK_SAME_FLOAT(fp8e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
  CHECK_SAME_FLOAT(fp8e4m3_to_f32(0x80), -0.0f);
  CHECK_SAME_FLOAT(fp8e4m3_to_f32(0x51), 9.0f);
  CHECK(std::isnan(fp8e4m3_to_f32(0x7F)));
  CHECK(std::isnan(fp8e4m3_to_f32(0xFF)));
}

TEST_CASE(round_trips) {
  int bf16_bad = 0, f16_bad = 0, e4m3_bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float b = bf16_to_f32(uint16_t(h));
    if (std::isnan(b) ? !std::isnan(bf16_to_f32(f32_to_bf16(b))) : f32_to_bf16(b) != h) ++bf16_bad;
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f) ? !std::isnan(f16_to_f32(f32_to_f16(f))) : f32_to_f16(f) != h) ++f16_bad;
  }
  for (uint32_t c = 0; c < 256; ++c) {
    const float v = fp8e4m3_to_f32(uint8_t(c));
    if (std::isnan(v) ? (f32_to_fp8e4m3(v) & 0x7F) != 0x7F : f32_to_fp8e4m3(v) != c) ++e4m3_bad;
  }
  CHECK_EQ(bf16_bad, 0);
  CHECK_EQ(f16_bad, 0);
  CHECK_EQ(e4m3_bad, 0);
}

TEST_CASE(e4m3_is_monotonic) {
  // Encoding non-decreasing floats gives non-decreasing values: no gaps or overlaps between the
  // subnormal, normal and saturating paths.
  float prev = -1.0f;
  int bad = 0;
  for (float x = 0.0f; x < 600.0f; x = x < 0.05f ? x + 1.0f / 65536 : x * 1.001f) {
    const float v = fp8e4m3_to_f32(f32_to_fp8e4m3(x));
    if (v < prev) ++bad;
    prev = v;
  }
  CHECK_EQ(bad, 0);
  CHECK_SAME_FLOAT(prev, 448.0f);
}

int main() { return check::run_all(); }
