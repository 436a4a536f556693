// The op entry points (llama4/ops.h) on small CPU tensors whose results are worked out by hand,
// through the public C++ API only, plus the argument checks as a C++ caller meets them
// (including ones Python cannot reach, such as a non-contiguous output).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.h"
#include "llama4/error.h"
#include "llama4/numeric.h"
#include "llama4/ops.h"
#include "llama4/tensor.h"

using namespace llama4;
static const Context cpu;  // the ops run on the CPU here

static const double kPi = 3.14159265358979323846;

template <typename T>
static TensorView view(std::vector<T>& v, DType dtype, const Shape& shape) {
  return TensorView(v.data(), dtype, shape);
}

TEST_CASE(rms_norm_hand_values) {
  // Row [3, 4]: mean of squares 12.5, so x / sqrt(12.5); times weight [2, 0.5].
  std::vector<float> x = {3, 4, -1, 1}, w = {2, 0.5f}, out(4);
  ops::rms_norm(cpu, view(out, DType::F32, {2, 2}), view(x, DType::F32, {2, 2}),
                view(w, DType::F32, {2}), 0.0f);
  const double r = std::sqrt(12.5);
  CHECK_NEAR(out[0], 2 * 3 / r, 1e-6);
  CHECK_NEAR(out[1], 0.5 * 4 / r, 1e-6);
  CHECK_NEAR(out[2], -2.0, 1e-6);  // row [-1, 1]: rms 1
  CHECK_NEAR(out[3], 0.5, 1e-6);
  // QK-norm: an undefined weight means no multiply; eps enters under the square root.
  ops::rms_norm(cpu, view(out, DType::F32, {2, 2}), view(x, DType::F32, {2, 2}), TensorView(), 0.5f);
  CHECK_NEAR(out[0], 3 / std::sqrt(13.0), 1e-6);
  CHECK_NEAR(out[3], 1 / std::sqrt(1.5), 1e-6);
}

TEST_CASE(rms_norm_bf16_and_strided_input) {
  // bf16: [1, 1, 1, 1] normalises to exactly 1; the weight [1, 2, 3, 4] is exact in bf16.
  std::vector<uint16_t> x(4, f32_to_bf16(1.0f)), w = {f32_to_bf16(1), f32_to_bf16(2), f32_to_bf16(3),
                                                      f32_to_bf16(4)},
                        out(4);
  ops::rms_norm(cpu, view(out, DType::BF16, {1, 4}), view(x, DType::BF16, {1, 4}),
                view(w, DType::BF16, {4}), 1e-6f);
  for (int i = 0; i < 4; ++i) CHECK_SAME_FLOAT(bf16_to_f32(out[i]), float(i + 1));
  // A transposed input: rows are columns of the buffer {3, -1 ; 4, 1}.
  std::vector<float> buf = {3, -1, 4, 1}, o(4);
  ops::rms_norm(cpu, view(o, DType::F32, {2, 2}),
                TensorView(buf.data(), DType::F32, {2, 2}, {1, 2}, Device::cpu()), TensorView(), 0);
  CHECK_NEAR(o[0], 3 / std::sqrt(12.5), 1e-6);
  CHECK_NEAR(o[1], 4 / std::sqrt(12.5), 1e-6);
  CHECK_NEAR(o[2], -1.0, 1e-6);
}

TEST_CASE(rope_rotates_adjacent_pairs) {
  // d = 4: pairs (x0, x1) with inv_freq pi/2 and (x2, x3) with inv_freq 0 (never rotates).
  std::vector<float> x = {1, 0, 1, 0, /* pos 0 */ 1, 2, 3, 4}, freq = {float(kPi / 2), 0}, out(8);
  std::vector<int64_t> pos = {1, 0};
  ops::rope(cpu, view(out, DType::F32, {2, 1, 4}), view(x, DType::F32, {2, 1, 4}),
            view(pos, DType::I64, {2}), view(freq, DType::F32, {2}));
  CHECK_NEAR(out[0], 0.0, 1e-6);  // (1, 0) rotated by pi/2 = (0, 1)
  CHECK_NEAR(out[1], 1.0, 1e-6);
  CHECK_SAME_FLOAT(out[2], 1.0f);
  CHECK_SAME_FLOAT(out[3], 0.0f);
  for (int i = 4; i < 8; ++i) CHECK_SAME_FLOAT(out[i], x[i]);  // position 0: identity
  // Angle = pos * inv_freq = 2 * 0.5 = 1 rad on (1, 2), int32 positions, two heads.
  std::vector<float> y = {1, 2, 1, 2}, f1 = {0.5f}, o2(4);
  std::vector<int32_t> p32 = {2};
  ops::rope(cpu, view(o2, DType::F32, {1, 2, 2}), view(y, DType::F32, {1, 2, 2}),
            view(p32, DType::I32, {1}), view(f1, DType::F32, {1}));
  const double c = std::cos(1.0), s = std::sin(1.0);
  for (int h = 0; h < 2; ++h) {
    CHECK_NEAR(o2[2 * h], 1 * c - 2 * s, 1e-6);
    CHECK_NEAR(o2[2 * h + 1], 1 * s + 2 * c, 1e-6);
  }
}

TEST_CASE(silu_gate_hand_values) {
  std::vector<float> g = {0, 1, -1}, u = {5, 2, 3}, out(3);
  ops::silu_gate(cpu, view(out, DType::F32, {1, 3}), view(g, DType::F32, {1, 3}),
                 view(u, DType::F32, {1, 3}));
  CHECK_SAME_FLOAT(out[0], 0.0f);
  CHECK_NEAR(out[1], 2 / (1 + std::exp(-1.0)), 1e-6);
  CHECK_NEAR(out[2], 3 * -1 / (1 + std::exp(1.0)), 1e-6);
}

TEST_CASE(quantize_fp8_hand_values) {
  // Row 0: amax 4 -> inv 112: [112, -224, 448] = 1.75*2^6, -1.75*2^7, 1.75*2^8.
  // Row 1: zeros: amax clamps to 1e-12, q stays 0.
  // Row 2: scale_ub 500 caps amax 1000: inv 0.896; 1000 -> 448 (clamped), 10 -> 8.96 ~ 9 (0x51).
  std::vector<float> x = {1, -2, 4, 0, 0, 0, 1000, 10, 0};
  std::vector<uint8_t> q(9);
  std::vector<float> scale(3);
  ops::quantize_fp8_rowwise(cpu, view(q, DType::F8E4M3, {3, 3}), view(scale, DType::F32, {3}),
                            view(x, DType::F32, {3, 3}), 500.0f);
  const std::vector<uint8_t> want = {0x6E, 0xF6, 0x7E, 0, 0, 0, 0x7E, 0x51, 0};
  for (int i = 0; i < 9; ++i) CHECK_EQ(q[i], want[i]);
  CHECK_SAME_FLOAT(scale[0], 1.0f / (448.0f / 4.0f));
  CHECK_SAME_FLOAT(scale[1], 1.0f / (448.0f / 1e-12f));
  CHECK_SAME_FLOAT(scale[2], 1.0f / (448.0f / 500.0f));
  // Without scale_ub (0) row 2's amax is 1000.
  ops::quantize_fp8_rowwise(cpu, view(q, DType::F8E4M3, {3, 3}), view(scale, DType::F32, {3}),
                            view(x, DType::F32, {3, 3}), 0.0f);
  CHECK_SAME_FLOAT(scale[2], 1.0f / (448.0f / 1000.0f));
  CHECK_EQ(q[6], uint8_t(0x7E));
}

TEST_CASE(quantize_fp8_nan_row_is_nan) {
  // A NaN anywhere in a row makes its amax NaN, as torch.amax does: row and scale are NaN.
  std::vector<float> x = {1, std::numeric_limits<float>::quiet_NaN(), 2, 1, 2, 4};
  std::vector<uint8_t> q(6);
  std::vector<float> scale(2);
  ops::quantize_fp8_rowwise(cpu, view(q, DType::F8E4M3, {2, 3}), view(scale, DType::F32, {2}),
                            view(x, DType::F32, {2, 3}), 0.0f);
  CHECK(std::isnan(scale[0]));
  for (int i = 0; i < 3; ++i) CHECK(std::isnan(fp8e4m3_to_f32(q[i])));
  CHECK_SAME_FLOAT(scale[1], 1.0f / 112.0f);  // the other row is untouched
  CHECK_EQ(q[5], uint8_t(0x7E));
}

TEST_CASE(dequantize_fp8_and_cast) {
  std::vector<uint8_t> q = {0x7E, 0x38, 0x01, 0xB8};
  std::vector<float> scale = {2, 0.5f}, out(4);
  ops::dequantize_fp8_rowwise(cpu, view(out, DType::F32, {2, 2}), view(q, DType::F8E4M3, {2, 2}),
                              view(scale, DType::F32, {2}));
  CHECK_SAME_FLOAT(out[0], 896.0f);
  CHECK_SAME_FLOAT(out[1], 2.0f);
  CHECK_SAME_FLOAT(out[2], std::ldexp(1.0f, -10));
  CHECK_SAME_FLOAT(out[3], -0.5f);
  std::vector<float> f = {1.0f, 1.00390625f, 500.0f, -3.0f};
  std::vector<uint16_t> b(4);
  ops::cast(cpu, view(b, DType::BF16, {4}), view(f, DType::F32, {4}));
  CHECK_EQ(b[0], uint16_t(0x3F80));
  CHECK_EQ(b[1], uint16_t(0x3F80));  // tie to even
  std::vector<uint8_t> e(4);
  ops::cast(cpu, view(e, DType::F8E4M3, {4}), view(b, DType::BF16, {4}));
  CHECK_EQ(e[2], uint8_t(0x7E));  // 500 saturates to 448
  CHECK_EQ(e[3], uint8_t(0xC4));  // -3 = -1.5 * 2^1
}

TEST_CASE(rope_inv_freq_values) {
  // Default: 1 / theta^(2j/d): d = 4, theta 1e4 -> [1, 0.01].
  std::vector<float> d = rope_inv_freq(4, 1e4, RopeScaling{});
  CHECK_EQ(d.size(), size_t(2));
  CHECK_SAME_FLOAT(d[0], 1.0f);
  CHECK_NEAR(d[1], 0.01, 1e-9);
  // llama3 rescaling: wavelengths below L/high unchanged, above L/low divided by factor, and
  // strictly in between inside the band (Llama 3.1 style, low 1 < high 4).
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.factor = 8;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  s.original_max_position_embeddings = 8192;
  const std::vector<float> base = rope_inv_freq(128, 5e5, RopeScaling{});
  const std::vector<float> band = rope_inv_freq(128, 5e5, s);
  int in_band = 0;
  for (size_t j = 0; j < base.size(); ++j) {
    const double wavelen = 2 * kPi / base[j];
    if (wavelen < 8192 / 4.0) {
      CHECK_SAME_FLOAT(band[j], base[j]);
    } else if (wavelen > 8192) {
      CHECK_SAME_FLOAT(band[j], base[j] / 8);
    } else {
      ++in_band;
      CHECK(band[j] < base[j] && band[j] > base[j] / 8);
    }
  }
  CHECK(in_band >= 3);
  // Scout: low == high == 1, factor 16: no band, no division by zero, nothing NaN.
  s.factor = 16;
  s.high_freq_factor = 1;
  const std::vector<float> scout = rope_inv_freq(128, 5e5, s);
  for (size_t j = 0; j < base.size(); ++j) {
    const double wavelen = 2 * kPi / base[j];
    CHECK_SAME_FLOAT(scout[j], wavelen > 8192 ? base[j] / 16 : base[j]);
  }
}

TEST_CASE(argument_errors) {
  std::vector<float> x(8), w(3), out(8), strided_out(16);
  const TensorView X = view(x, DType::F32, {2, 4});
  CHECK_THROWS(ops::rms_norm(cpu, view(out, DType::F32, {2, 4}), X, view(w, DType::F32, {3}), 1e-5f),
               ValueError, "rms_norm: 'weight' must have shape [4], got [3]");
  CHECK_THROWS(ops::rms_norm(cpu, view(out, DType::BF16, {2, 4}), X, TensorView(), 1e-5f), TypeError,
               "rms_norm: 'out' must have the dtype of 'x' (float32), got bfloat16");
  CHECK_THROWS(ops::rms_norm(cpu, view(out, DType::F32, {4, 2}), X, TensorView(), 1e-5f), ValueError,
               "'out' must have shape [2, 4], got [4, 2]");
  // Outputs must be contiguous: the message shows the offending strides.
  const TensorView every_other(strided_out.data(), DType::F32, {2, 4}, {8, 2}, Device::cpu());
  CHECK_THROWS(ops::rms_norm(cpu, every_other, X, TensorView(), 1e-5f), ValueError,
               "rms_norm: output 'out' must be contiguous", "[2, 4]", "strides [8, 2]");
  CHECK_THROWS(ops::silu_gate(cpu, view(out, DType::F32, {2, 4}), X, view(x, DType::F32, {4, 2})),
               ValueError, "silu_gate: 'up' must have shape [2, 4], got [4, 2]");
  std::vector<uint8_t> q(8);
  std::vector<float> scale(2);
  CHECK_THROWS(ops::quantize_fp8_rowwise(cpu, view(q, DType::U8, {2, 4}), view(scale, DType::F32, {2}), X, 0),
               TypeError, "'q_out' must have dtype float8_e4m3fn, got uint8");
  CHECK_THROWS(ops::quantize_fp8_rowwise(cpu, view(q, DType::F8E4M3, {2, 4}), view(scale, DType::F32, {2}),
                                         X, -1.0f),
               ValueError, "'scale_ub' must be finite and >= 0", "-1");
  CHECK_THROWS(rope_inv_freq(6, 0.0, RopeScaling{}), ValueError, "rope_theta must be positive");
  RopeScaling bad;
  bad.type = RopeScaling::Type::Llama3;
  bad.low_freq_factor = 4;
  bad.high_freq_factor = 1;
  CHECK_THROWS(rope_inv_freq(8, 1e4, bad), ValueError, "low=4 high=1");
}

// An op runs in one context: tensors on another device are a TypeError naming both devices, found
// before anything touches their memory (the CUDA views here point nowhere).
TEST_CASE(context_device_mismatch) {
  const TensorView gx(nullptr, DType::F32, {2, 4}, {4, 1}, Device::cuda(0));
  const TensorView gout(nullptr, DType::F32, {2, 4}, {4, 1}, Device::cuda(0));
  CHECK_THROWS(ops::rms_norm(cpu, gout, gx, TensorView(), 1e-5f), TypeError,
               "rms_norm: 'x' is on cuda:0 but the op runs in a context on cpu");
  std::vector<float> x(8), out(8);
  CHECK_THROWS(ops::silu_gate(Context::cuda(1), view(out, DType::F32, {2, 4}), view(x, DType::F32, {2, 4}),
                              view(x, DType::F32, {2, 4})),
               TypeError, "silu_gate: 'gate' is on cpu but the op runs in a context on cuda:1");
  // A host<->device copy runs in the context of its GPU side.
  CHECK_THROWS(ops::copy(Context::cuda(1), gout, view(x, DType::F32, {2, 4})), TypeError,
               "copy: a copy from cpu to cuda:0 runs in a context on cuda:0, got one on cuda:1");
}

TEST_CASE(empty_inputs_are_no_ops) {
  std::vector<float> none;
  ops::rms_norm(cpu, TensorView(nullptr, DType::F32, {0, 4}), TensorView(nullptr, DType::F32, {0, 4}),
                TensorView(), 1e-5f);
  ops::quantize_fp8_rowwise(cpu, TensorView(nullptr, DType::F8E4M3, {0, 4}),
                            TensorView(nullptr, DType::F32, {0}),
                            TensorView(nullptr, DType::F32, {0, 4}), 0.0f);
  CHECK(none.empty());  // reaching here without a crash is the test
}

int main() { return check::run_all(); }
