// CPU LayerNorm, exact GELU, bias add, table-driven interleaved RoPE, pixel shuffle and patch
// extraction for the vision encoder. Math in fp32 (LayerNorm statistics in double: the reference
// is torch's fp32 LayerNorm, and a more accurate mean/variance keeps us within its rounding), one
// rounding to the output dtype, as torch rounds these ops.
#include "cpu/vision_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/attention_micro.h"
#include "cpu/elem.h"
#include "cpu/vec8.h"

namespace llama4::cpu {

namespace {

template <typename T>
void layer_norm_impl(const TensorView& out, const TensorView& x, const TensorView& weight,
                     const TensorView& bias, float eps) {
  using E = Elem<T>;
  const int64_t D = x.size(-1);
  const int64_t rows = D ? x.numel() / D : 0;
  const T* xp = x.ptr<T>();
  const T* wp = weight.ptr<T>();
  const T* bp = bias.ptr<T>();
  T* op = out.ptr<T>();
#pragma omp parallel for schedule(static) if (rows * D > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = xp + r * D;
    double sum = 0.0;
    for (int64_t i = 0; i < D; ++i) sum += E::load(xr, i);
    const double mean = sum / double(D);
    double ss = 0.0;
    for (int64_t i = 0; i < D; ++i) {
      const double c = double(E::load(xr, i)) - mean;
      ss += c * c;
    }
    const float rstd = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
    const float m = float(mean);
    T* orow = op + r * D;
    for (int64_t i = 0; i < D; ++i)
      E::store(orow, i, (E::load(xr, i) - m) * rstd * E::load(wp, i) + E::load(bp, i));
  }
}

// GELU(x) = 0.5 x (1 + erf(x / sqrt 2)) computed as PyTorch's CPU kernel does (the reference's
// own arithmetic): erf by Abramowitz-Stegun 7.1.26, |error| <= 1.5e-7,
// erf(a) = sign(a) (1 - r(t) t exp(-a^2)) with t = 1 / (1 + p |a|).
#if LLAMA4_ATTN_AVX2
inline __m256 gelu8(__m256 x) {  // exp from the attention kernels (Cephes, 2e-7 relative)
  const __m256 one = _mm256_set1_ps(1.0f), neg_zero = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752440f));
  const __m256 sign = _mm256_and_ps(neg_zero, a);
  const __m256 abs_a = _mm256_xor_ps(sign, a);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), abs_a, one));
  __m256 r = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(1.421413741f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.284496736f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.254829592f));
  const __m256 e = micro::exp_nonpos(_mm256_xor_ps(neg_zero, _mm256_mul_ps(a, a)));  // exp(-a^2)
  const __m256 erf_abs = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_xor_ps(neg_zero, e), t), r, one);
  const __m256 erf = _mm256_xor_ps(sign, erf_abs);
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), _mm256_add_ps(one, erf));
}
#else
inline float gelu1(float x) {
  const float a = x * 0.70710678118654752440f, abs_a = std::fabs(a);
  const float t = 1.0f / (0.3275911f * abs_a + 1.0f);
  const float r = (((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f;
  const float erf_abs = 1.0f - r * t * std::exp(-a * a);
  return x * 0.5f * (1.0f + std::copysign(erf_abs, a));
}
#endif


template <typename T>
void gelu_impl(const TensorView& out, const TensorView& x) {
  using E = Elem<T>;
  const int64_t n = x.numel(), blocks = (n + 7) / 8;
  const T* xp = x.ptr<T>();
  T* op = out.ptr<T>();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t i0 = blk * 8, m = std::min<int64_t>(8, n - i0);
#if LLAMA4_ATTN_AVX2
    if constexpr (vec8::kVec8<T>) {
      if (m == 8) {  // whole blocks straight through registers
        vec8::store(op + i0, gelu8(vec8::load(xp + i0)));
        continue;
      }
    }
#endif
    // Through a buffer of 8 (the tail padded, f16), so every element takes the same arithmetic.
    alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; j < m; ++j) buf[j] = E::load(xp, i0 + j);
#if LLAMA4_ATTN_AVX2
    _mm256_store_ps(buf, gelu8(_mm256_load_ps(buf)));
#else
    for (float& v : buf) v = gelu1(v);
#endif
    for (int64_t j = 0; j < m; ++j) E::store(op, i0 + j, buf[j]);
  }
}

template <typename T, typename XT>
void add_bias_rows(T* op, const XT* xp, const T* bp, int64_t rows, int64_t N) {
#pragma omp parallel for schedule(static) if (rows * N > 65536)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < N; ++c)
      Elem<T>::store(op, r * N + c, Elem<XT>::load(xp, r * N + c) + Elem<T>::load(bp, c));
}

template <typename T>
void add_bias_impl(const TensorView& out, const TensorView& x, const TensorView& bias) {
  const int64_t N = out.size(-1);
  const int64_t rows = N ? out.numel() / N : 0;
  if (x.dtype == DType::F32)
    add_bias_rows<T, float>(out.ptr<T>(), x.ptr<float>(), bias.ptr<T>(), rows, N);
  else
    add_bias_rows<T, T>(out.ptr<T>(), x.ptr<T>(), bias.ptr<T>(), rows, N);
}

template <typename T>
void rope_table_impl(const TensorView& out, const TensorView& x, const TensorView& cos,
                     const TensorView& sin) {
  using E = Elem<T>;
  const int64_t B = x.size(0), N = x.size(1), H = x.size(2), d = x.size(3), half = d / 2;
  const float* cp = cos.ptr<float>();
  const float* sp = sin.ptr<float>();
  const int64_t sb = x.stride(0), sn = x.stride(1), sh = x.stride(2);
  const T* xp = x.ptr<T>();
  T* op = out.ptr<T>();
#pragma omp parallel for collapse(2) schedule(static) if (B * N * H * d > 32768)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) {
        const T* xr = xp + b * sb + n * sn + h * sh;
        T* orow = op + ((b * N + n) * H + h) * d;
        for (int64_t j = 0; j < half; ++j) {
          const float c = cp[n * half + j], s = sp[n * half + j];
          const float a = E::load(xr, 2 * j), bb = E::load(xr, 2 * j + 1);
          E::store(orow, 2 * j, a * c - bb * s);
          E::store(orow, 2 * j + 1, a * s + bb * c);
        }
      }
}

}  // namespace

void layer_norm(const TensorView& out, const TensorView& x, const TensorView& weight,
                const TensorView& bias, float eps) {
  LLAMA4_DISPATCH_ACT(x.dtype, "layer_norm", layer_norm_impl, out, x, weight, bias, eps);
}

void gelu(const TensorView& out, const TensorView& x) {
  LLAMA4_DISPATCH_ACT(x.dtype, "gelu", gelu_impl, out, x);
}

void add_bias(const TensorView& out, const TensorView& x, const TensorView& bias) {
  LLAMA4_DISPATCH_ACT(out.dtype, "add_bias", add_bias_impl, out, x, bias);
}

void rope_table(const TensorView& out, const TensorView& x, const TensorView& cos,
                const TensorView& sin) {
  LLAMA4_DISPATCH_ACT(x.dtype, "rope_table", rope_table_impl, out, x, cos, sin);
}

// out[b, i*So + j] = concat over (n, m) of x[b, (f*i + n)*S + f*j + m]: whole C-element rows are
// moved, so this is a gather of row copies, independent of the dtype.
void pixel_shuffle(const TensorView& out, const TensorView& x, int64_t f) {
  const int64_t B = x.size(0), C = x.size(2);
  const int64_t S = int64_t(std::llround(std::sqrt(double(x.size(1))))), So = S / f;
  const size_t es = element_size(x.dtype), row = size_t(C) * es;
  const char* xp = static_cast<const char*>(x.data);
  char* op = static_cast<char*>(out.data);
  const int64_t sb = x.stride(0) * int64_t(es), sn = x.stride(1) * int64_t(es);
#pragma omp parallel for collapse(2) schedule(static) if (x.numel() > 65536)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < So; ++i)
      for (int64_t j = 0; j < So; ++j) {
        char* dst = op + ((b * So + i) * So + j) * int64_t(f * f) * int64_t(row);
        for (int64_t n = 0; n < f; ++n)
          for (int64_t m = 0; m < f; ++m) {
            const int64_t token = (f * i + n) * S + f * j + m;
            std::memcpy(dst + (n * f + m) * int64_t(row), xp + b * sb + token * sn, row);
          }
      }
}

namespace {
template <typename T>
void patchify_impl(const TensorView& out, const TensorView& pixels, int64_t p) {
  const int64_t B = pixels.size(0), C = pixels.size(1), H = pixels.size(2), W = pixels.size(3);
  const int64_t ph = H / p, pw = W / p, K = C * p * p;
  T* op = out.ptr<T>();
  const DType in = pixels.dtype;
  const char* base = static_cast<const char*>(pixels.data);
  const size_t es = element_size(in);
  auto load = [&](int64_t off) -> float {  // off in elements
    const char* q = base + off * int64_t(es);
    switch (in) {
      case DType::F32: return *reinterpret_cast<const float*>(q);
      case DType::BF16: return bf16_to_f32(reinterpret_cast<const bf16*>(q)->bits);
      default: return f16_to_f32(reinterpret_cast<const f16*>(q)->bits);
    }
  };
#pragma omp parallel for collapse(2) schedule(static) if (out.numel() > 65536)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t py = 0; py < ph; ++py)
      for (int64_t px = 0; px < pw; ++px) {
        T* orow = op + ((b * ph + py) * pw + px) * K;
        int64_t k = 0;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t ky = 0; ky < p; ++ky)
            for (int64_t kx = 0; kx < p; ++kx, ++k) {
              const int64_t off = b * pixels.stride(0) + c * pixels.stride(1) +
                                  (py * p + ky) * pixels.stride(2) + (px * p + kx) * pixels.stride(3);
              Elem<T>::store(orow, k, load(off));
            }
      }
}
}  // namespace

void patchify(const TensorView& out, const TensorView& pixels, int64_t patch) {
  LLAMA4_DISPATCH_ACT(out.dtype, "patchify", patchify_impl, out, pixels, patch);
}

}  // namespace llama4::cpu
