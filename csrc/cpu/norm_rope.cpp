// CPU RMSNorm, interleaved RoPE and SiLU-gate: fp32 math, rounding where transformers rounds.
// sin/cos/exp come from llama4/mathfn.h, not libm, so the CUDA kernels can match them bit for bit;
// this file is compiled with -ffp-contract=off so every product rounds where written (RoPE's fmas
// are explicit).
#include "cpu/norm_rope.h"

#include <cmath>

#include "cpu/elem.h"
#include "llama4/mathfn.h"

namespace llama4::cpu {

namespace {

template <typename T>
void rms_norm_impl(const TensorView& out, const TensorView& x, const TensorView& weight, float eps) {
  using E = Elem<T>;
  const int64_t D = x.size(-1);
  const int64_t rows = D ? x.numel() / D : 0;
  const T* xp = x.ptr<T>();
  const T* wp = weight.ptr<T>();
  T* op = out.ptr<T>();
#pragma omp parallel for schedule(static) if (rows * D > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = xp + r * D;
    T* orow = op + r * D;
    float ss = 0.f;
    for (int64_t i = 0; i < D; ++i) {
      const float v = E::load(xr, i);
      ss += v * v;
    }
    const float inv = 1.0f / std::sqrt(ss / float(D) + eps);
    for (int64_t i = 0; i < D; ++i) {
      // HF: normalize in fp32, cast to the activation dtype, then multiply by the weight.
      const float n = E::round(E::load(xr, i) * inv);
      E::store(orow, i, wp ? n * E::load(wp, i) : n);
    }
  }
}

template <typename T>
void rope_impl(const TensorView& out, const TensorView& x, const TensorView& positions,
               const TensorView& inv_freq) {
  using E = Elem<T>;
  const int64_t T_ = x.size(0), H = x.size(1), d = x.size(2), half = d / 2;
  const float* freq = inv_freq.ptr<float>();
  const bool pos64 = positions.dtype == DType::I64;
  const T* xp = x.ptr<T>();
  T* op = out.ptr<T>();
#pragma omp parallel for schedule(static) if (T_ * H * d > 32768)
  for (int64_t t = 0; t < T_; ++t) {
    const float p = pos64 ? float(positions.ptr<int64_t>()[t]) : float(positions.ptr<int32_t>()[t]);
    for (int64_t j = 0; j < half; ++j) {
      const float angle = p * freq[j];  // fp32, as transformers computes it
      float s, c;
      sincos_f32(angle, &s, &c);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t base = (t * H + h) * d + 2 * j;
        const float a = E::load(xp, base), b = E::load(xp, base + 1);
        // Explicit fmas fix the rounding: left to itself, GCC vectorizes this complex-multiply
        // shape into fmaddsub (fusing a*c and a*s) in some loop paths but not in others, even
        // with -ffp-contract=off. The CUDA kernel computes exactly these two fmas.
        E::store(op, base, std::fma(a, c, -(b * s)));
        E::store(op, base + 1, std::fma(a, s, b * c));
      }
    }
  }
}

template <typename T>
void silu_gate_impl(const TensorView& out, const TensorView& gate, const TensorView& up) {
  using E = Elem<T>;
  const int64_t n = out.numel();
  const T* g = gate.ptr<T>();
  const T* u = up.ptr<T>();
  T* o = out.ptr<T>();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float gv = E::load(g, i);
    const float act = E::round(gv / (1.0f + exp_f32(-gv)));  // SiLU rounds before the product
    E::store(o, i, act * E::load(u, i));
  }
}

}  // namespace

void rms_norm(const TensorView& out, const TensorView& x, const TensorView& weight, float eps) {
  LLAMA4_DISPATCH_ACT(x.dtype, "rms_norm", rms_norm_impl, out, x, weight, eps);
}

void rope(const TensorView& out, const TensorView& x, const TensorView& positions,
          const TensorView& inv_freq) {
  LLAMA4_DISPATCH_ACT(x.dtype, "rope", rope_impl, out, x, positions, inv_freq);
}

void silu_gate(const TensorView& out, const TensorView& gate, const TensorView& up) {
  LLAMA4_DISPATCH_ACT(out.dtype, "silu_gate", silu_gate_impl, out, gate, up);
}

}  // namespace llama4::cpu
