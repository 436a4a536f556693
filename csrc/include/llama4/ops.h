// The op entry points. Each validates its arguments once (shapes, dtypes, devices; messages name
// the argument and the expected vs actual value) and dispatches to the cpu:: or cuda:: kernel.
// Outputs are passed in (preallocated, contiguous); inputs may be non-contiguous views.
// Activation dtypes: float32, bfloat16, float16. Math is fp32; results round where the
// Hugging Face reference rounds (noted per op).
#pragma once
#include <vector>

#include "llama4/tensor.h"

namespace llama4::ops {

// ---- memory ----
// dst = src, same shape and dtype; any strides on one device; contiguous tensors across CPU<->CUDA.
void copy(const TensorView& dst, const TensorView& src);
// dst = src converted between float dtypes (f32/bf16/f16/fp8) with PyTorch's rounding
// (to fp8: saturating at +-448, see numeric.h).
void cast(const TensorView& dst, const TensorView& src);
// A contiguous tensor holding src (a copy; the same storage is not reused).
Tensor contiguous(const TensorView& src);
Tensor to_device(const TensorView& src, Device device);

// ---- norms, RoPE, activation ----
// out[..., D] = cast(x32 * rsqrt(mean(x32^2) + eps)) * weight   (weight [D], same dtype as x).
// With an undefined weight (data == nullptr) it is Llama 4's QK-norm: no weight multiply.
void rms_norm(const TensorView& out, const TensorView& x, const TensorView& weight, float eps);

// Llama 4 RoPE on adjacent pairs (x[2j], x[2j+1]) rotated by angle = float(pos) * inv_freq[j]:
// x: [T, H, d], positions: [T] int32/int64 (absolute), inv_freq: [d/2] float32; out like x.
void rope(const TensorView& out, const TensorView& x, const TensorView& positions,
          const TensorView& inv_freq);

// out[T, I] = silu(gate) * up, rounding after the SiLU and after the product (as HF does).
void silu_gate(const TensorView& out, const TensorView& gate, const TensorView& up);

// ---- FP8 e4m3 row-wise quantization (FBGEMM quantize_fp8_per_row semantics) ----
// amax = clamp(max|x[r,:]|, 1e-12, scale_ub if scale_ub > 0), inv = 448 / amax,
// q[r,:] = e4m3(clamp(x * inv, -448, 448)), scale[r] = 1 / inv.   x: [R, K] f32/bf16/f16.
// scale_ub: finite, >= 0 (0: no bound). A NaN in a row makes that row and its scale NaN.
void quantize_fp8_rowwise(const TensorView& q_out, const TensorView& scale_out, const TensorView& x,
                          float scale_ub);
// out[r, k] = float(q[r, k]) * scale[r], rounded to out's dtype.
void dequantize_fp8_rowwise(const TensorView& out, const TensorView& q, const TensorView& scale);

}  // namespace llama4::ops

namespace llama4 {

// RoPE frequencies as transformers computes them (fp32): inv_freq[j] = 1 / theta^(2j/d), and for
// rope_type "llama3" the wavelength-dependent rescaling (no smoothing band when low == high).
struct RopeScaling {
  enum class Type { Default, Llama3 };
  Type type = Type::Default;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position_embeddings = 8192;
};
std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling);

}  // namespace llama4
