// CPU FP8 row-wise quantization, matching FBGEMM's quantize_fp8_per_row and torch's e4m3 cast.
#include "cpu/quant.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/elem.h"
#include "cpu/fp8_row.h"
#include "cpu/vec8.h"

namespace llama4::cpu {

namespace {

template <typename T>
void quantize_impl(const TensorView& q_out, const TensorView& scale_out, const TensorView& x,
                   float scale_ub) {
  const int64_t R = x.size(0), K = x.size(1);
  uint8_t* q = q_out.ptr<uint8_t>();
  float* scale = scale_out.ptr<float>();
  const T* xp = x.ptr<T>();
#pragma omp parallel for schedule(static) if (R * K > 32768)
  for (int64_t r = 0; r < R; ++r) scale[r] = quantize_fp8_row(xp + r * K, K, scale_ub, q + r * K);
}

template <typename T>
void dequantize_impl(const TensorView& out, const TensorView& q, const TensorView& scale) {
  using E = Elem<T>;
  const int64_t R = q.size(0), K = q.size(1);
  const uint8_t* qp = q.ptr<uint8_t>();
  const float* sp = scale.ptr<float>();
  T* op = out.ptr<T>();
#pragma omp parallel for schedule(static) if (R * K > 32768)
  for (int64_t r = 0; r < R; ++r) {
    int64_t k = 0;
#if LLAMA4_VEC8
    if constexpr (vec8::kVec8<T>) {  // the same value and one product, eight at a time
      const __m256 scale = _mm256_set1_ps(sp[r]);
      for (; k + 8 <= K; k += 8) vec8::store(op + r * K + k, _mm256_mul_ps(vec8::load_e4m3(qp + r * K + k), scale));
    }
#endif
    for (; k < K; ++k) E::store(op, r * K + k, fp8e4m3_to_f32(qp[r * K + k]) * sp[r]);
  }
}

}  // namespace

void quantize_fp8_rowwise(const TensorView& q_out, const TensorView& scale_out, const TensorView& x,
                          float scale_ub) {
  LLAMA4_DISPATCH_ACT(x.dtype, "quantize_fp8_rowwise", quantize_impl, q_out, scale_out, x, scale_ub);
}

void dequantize_fp8_rowwise(const TensorView& out, const TensorView& q, const TensorView& scale) {
  LLAMA4_DISPATCH_ACT(out.dtype, "dequantize_fp8_rowwise", dequantize_impl, out, q, scale);
}

static float load_any(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::F32: return t.ptr<float>()[i];
    case DType::BF16: return bf16_to_f32(t.ptr<uint16_t>()[i]);
    case DType::F16: return f16_to_f32(t.ptr<uint16_t>()[i]);
    case DType::F8E4M3: return fp8e4m3_to_f32(t.ptr<uint8_t>()[i]);
    default: return 0.f;
  }
}

static void store_any(const TensorView& t, int64_t i, float v) {
  switch (t.dtype) {
    case DType::F32: t.ptr<float>()[i] = v; break;
    case DType::BF16: t.ptr<uint16_t>()[i] = f32_to_bf16(v); break;
    case DType::F16: t.ptr<uint16_t>()[i] = f32_to_f16(v); break;
    case DType::F8E4M3: t.ptr<uint8_t>()[i] = f32_to_fp8e4m3(v); break;
    default: break;
  }
}

void cast(const TensorView& dst, const TensorView& src) {
  const int64_t n = dst.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) store_any(dst, i, load_any(src, i));
}

}  // namespace llama4::cpu
