// CPU RMSNorm, interleaved RoPE and SiLU-gate: fp32 math, rounding where transformers rounds.
// sin/cos/exp come from llama4/mathfn.h, not libm, so the CUDA kernels can match them bit for bit;
// this file is compiled with -ffp-contract=off so every product rounds where written (RoPE's fmas
// are explicit). float and bf16 go eight elements at a time through cpu/vec8.h, which keeps every
// element's arithmetic (so RoPE and SiLU-gate stay bit-identical to the scalar path and to CUDA).
#include "cpu/norm_rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/elem.h"
#include "cpu/vec8.h"
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
    // The sum of squares stays sequential: its order moves the fp32 result by an ulp, and that
    // moves e4m3 codes across rounding boundaries in the FP8 KV cache's parity with transformers
    // (tests/test_kv_cache_fp8.py), so changing it needs a flip-aware reference first.
    float ss = 0.f;
    for (int64_t i = 0; i < D; ++i) {
      const float v = E::load(xr, i);
      ss += v * v;
    }
    const float inv = 1.0f / std::sqrt(ss / float(D) + eps);
    int64_t j0 = 0;
#if LLAMA4_VEC8
    if constexpr (vec8::kVec8<T>) {
      const __m256 vinv = _mm256_set1_ps(inv);
      for (; j0 + 8 <= D; j0 += 8) {
        const __m256 n = vec8::round<T>(_mm256_mul_ps(vec8::load(xr + j0), vinv));
        vec8::store(orow + j0, wp ? _mm256_mul_ps(n, vec8::load(wp + j0)) : n);
      }
    }
#endif
    for (int64_t i = j0; i < D; ++i) {
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
    // Per pair j of this position: (cos, sin) and (-sin, cos), interleaved like the pairs, shared by
    // every head. (a, b) -> (fma(a, cos, b * -sin), fma(a, sin, b * cos)): a * c + -(b * s) and
    // a * s + b * c with one rounding each, as transformers' fp32 math rounds them apart from the
    // fma. Explicit fmas fix the rounding: left to itself, GCC vectorizes this complex-multiply
    // shape into fmaddsub (fusing a*c and a*s) in some loop paths but not in others, even with
    // -ffp-contract=off. The CUDA kernel computes exactly these two fmas.
    thread_local std::vector<float> cs, nsc;  // this thread's tables, reused token after token
    cs.resize(size_t(2 * half));
    nsc.resize(size_t(2 * half));
    for (int64_t j = 0; j < half; ++j) {
      const float angle = p * freq[j];  // fp32, as transformers computes it
      float sn, cn;
      sincos_f32(angle, &sn, &cn);
      cs[size_t(2 * j)] = cn;
      cs[size_t(2 * j + 1)] = sn;
      nsc[size_t(2 * j)] = -sn;
      nsc[size_t(2 * j + 1)] = cn;
    }
    for (int64_t h = 0; h < H; ++h) {
      const T* xr = xp + (t * H + h) * d;
      T* orow = op + (t * H + h) * d;
      int64_t k0 = 0;
#if LLAMA4_VEC8
      if constexpr (vec8::kVec8<T>) {
        for (; k0 + 8 <= 2 * half; k0 += 8) {  // four pairs: a duplicated, b duplicated
          const __m256 v = vec8::load(xr + k0);
          const __m256 prod = _mm256_mul_ps(_mm256_movehdup_ps(v), _mm256_loadu_ps(nsc.data() + k0));
          vec8::store(orow + k0, _mm256_fmadd_ps(_mm256_moveldup_ps(v), _mm256_loadu_ps(cs.data() + k0), prod));
        }
      }
#endif
      for (int64_t k = k0; k < 2 * half; k += 2) {
        const float a = E::load(xr, k), b = E::load(xr, k + 1);
        E::store(orow, k, std::fma(a, cs[size_t(k)], b * nsc[size_t(k)]));
        E::store(orow, k + 1, std::fma(a, cs[size_t(k + 1)], b * nsc[size_t(k + 1)]));
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
  constexpr int64_t kBlock = 1024;  // per OpenMP chunk: whole vectors but for the last block
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t end = std::min(n, (blk + 1) * kBlock);
    int64_t i = blk * kBlock;
#if LLAMA4_VEC8
    if constexpr (vec8::kVec8<T>) {
      constexpr int kChains = 4;  // exp's polynomial chains in flight together
      for (; i + 8 * kChains <= end; i += 8 * kChains) {
        __m256 gv[kChains], e[kChains];
        for (int c = 0; c < kChains; ++c) {
          gv[c] = vec8::load(g + i + 8 * c);
          e[c] = _mm256_xor_ps(gv[c], _mm256_set1_ps(-0.0f));
        }
        vec8::exp(e);
        for (int c = 0; c < kChains; ++c) {
          const __m256 act = vec8::round<T>(_mm256_div_ps(gv[c], _mm256_add_ps(_mm256_set1_ps(1.0f), e[c])));
          vec8::store(o + i + 8 * c, _mm256_mul_ps(act, vec8::load(u + i + 8 * c)));
        }
      }
      for (; i + 8 <= end; i += 8) {
        __m256 gv[1] = {vec8::load(g + i)};
        __m256 e[1] = {_mm256_xor_ps(gv[0], _mm256_set1_ps(-0.0f))};
        vec8::exp(e);
        const __m256 act = vec8::round<T>(_mm256_div_ps(gv[0], _mm256_add_ps(_mm256_set1_ps(1.0f), e[0])));
        vec8::store(o + i, _mm256_mul_ps(act, vec8::load(u + i)));
      }
    }
#endif
    for (; i < end; ++i) {
      const float gv = E::load(g, i);
      const float act = E::round(gv / (1.0f + exp_f32(-gv)));  // SiLU rounds before the product
      E::store(o, i, act * E::load(u, i));
    }
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
