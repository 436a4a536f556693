// CUDA kernels for RMSNorm / QK-norm, interleaved RoPE and SiLU-gate; same contracts as
// cpu/norm_rope.h (validated, contiguous arguments on one CUDA device).
#pragma once
#include "llama4/context.h"

namespace llama4::cuda {
void rms_norm(const Context& ctx, const TensorView& out, const TensorView& x,
              const TensorView& weight, float eps);
void rope(const Context& ctx, const TensorView& out, const TensorView& x,
          const TensorView& positions, const TensorView& inv_freq);
void silu_gate(const Context& ctx, const TensorView& out, const TensorView& gate,
               const TensorView& up);
}  // namespace llama4::cuda
