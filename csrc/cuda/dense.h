// CUDA dense linear (plain and grouped by expert) and the residual add; same contracts as
// cpu/linear.h and cpu/dense.h (validated, on one CUDA device, queued on ctx's stream).
#pragma once
#include "llama4/context.h"

namespace llama4::cuda {
// out[M, N] = x[M, K] . w[N, K]^T; x: f32/bf16 with a row stride and unit column stride; w
// contiguous, x's dtype; out contiguous, x's dtype or float32.
void linear(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& w);
// Rows [offsets[e], offsets[e + 1]) of out = the same rows of x . w[e]^T, for e < E.
// x: [R, K] contiguous; w: [E, N, K] contiguous; offsets: [E + 1] int32 on the device (read only by
// the kernel: no host synchronisation); out: [R, N] contiguous, x's dtype.
void grouped_linear(const Context& ctx, const TensorView& out, const TensorView& x,
                    const TensorView& w, const TensorView& offsets);
// out = a + b elementwise, one rounding (contiguous, one activation dtype).
void add(const Context& ctx, const TensorView& out, const TensorView& a, const TensorView& b);
}  // namespace llama4::cuda
