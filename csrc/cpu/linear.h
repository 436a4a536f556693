// CPU dense linear layer y[M, N] = x[M, K] . w[N, K]^T (nn.Linear layout, no bias), fp32 accumulate.
#pragma once
#include "llama4/tensor.h"

namespace llama4::cpu {
// x: [M, K] f32/bf16 (row stride x.strides[0], unit column stride); w: [N, K] contiguous, same
// dtype as x; out: [M, N] contiguous, dtype of x or float32.
void linear(const TensorView& out, const TensorView& x, const TensorView& w);
// The same product with w [K, N] (Hugging Face's x @ W layout, e.g. a fused expert read where it
// lies in the memory map): row stride w.strides[0], unit column stride. On AVX512-BF16 CPUs bf16
// sums equal linear()'s up to their order (here one chain over K pairs, as the packed GEMM sums);
// fp32 x fp32 sums one FMA per k.
void linear_kn(const TensorView& out, const TensorView& x, const TensorView& w);
}  // namespace llama4::cpu
