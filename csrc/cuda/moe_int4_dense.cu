// The INT4 dense linear's expert offsets on the device (cuda/moe_int4_dense.h).
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/moe_int4_dense.h"

namespace llama4::cuda {

namespace {
__global__ void write_all_rows(int32_t* off, int32_t rows) {
  off[0] = 0;
  off[1] = rows;
}
}  // namespace

Tensor int4_all_rows_offsets(const Context& ctx, int64_t rows) {
  LLAMA4_CHECK_ARG(0 <= rows && rows <= INT32_MAX, "linear_int4: on CUDA the rows of 'x' must fit in int32, got ",
                   rows);
  Tensor off = ctx.empty({2}, DType::I32);
  const OpScope scope(ctx);
  write_all_rows<<<1, 1, 0, scope.stream>>>(off.ptr<int32_t>(), int32_t(rows));
  LLAMA4_CUDA_CHECK_LAUNCH();
  return off;
}

}  // namespace llama4::cuda
