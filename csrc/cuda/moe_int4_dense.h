// The expert offsets of the INT4 dense linear (llama4/moe_int4.h, ops::linear_int4) on a GPU: the
// grouped GEMM with one expert owning every row, its offsets [0, rows] written by a kernel on the
// context's stream (plain C++: no CUDA headers). No host copy and no synchronisation, so a step that
// runs it can be captured in a CUDA graph.
#pragma once
#include <cstdint>

#include "llama4/context.h"
#include "llama4/tensor.h"

namespace llama4::cuda {
// int32 [2] = {0, rows} on ctx's device (a stream-ordered temporary of ctx).
Tensor int4_all_rows_offsets(const Context& ctx, int64_t rows);
}  // namespace llama4::cuda
