// The kernel choice of the CUDA linear / grouped_linear ops (llama4/linear_config.h): a pure
// function of the problem, built on every backend so it can be unit-tested and printed anywhere.
#include "llama4/linear_config.h"

#include <algorithm>
#include <cstdint>

#include "llama4/error.h"
#include "llama4/moe_fp8.h"

namespace llama4 {

const char* linear_kernel_name(LinearKernel kernel) {
  switch (kernel) {
    case LinearKernel::Gemv: return "gemv";
    case LinearKernel::Tiled: return "tiled";
    case LinearKernel::CutlassSmall: return "cutlass_64x64";
    case LinearKernel::CutlassMedium: return "cutlass_64x128";
    case LinearKernel::CutlassLarge: return "cutlass_128x128";
    case LinearKernel::CutlassGrouped: return "cutlass_grouped_128x128";
    case LinearKernel::CutlassGroupedSwapAB: return "cutlass_grouped_swap_ab_64x32";
  }
  return "?";
}

namespace {

// What TMA needs: 16-byte aligned bases and row strides (8 bf16, 4 fp32), sizes within CUTLASS's
// int32 problem shape.
bool cutlass_eligible(const LinearProblem& p) {
  const bool f32_out = p.out_dtype == DType::F32;
  return p.arch == 90 && p.x_dtype == DType::BF16 &&
         (p.out_dtype == DType::BF16 || (f32_out && p.groups == 0)) && p.aligned16 && p.k % 8 == 0 &&
         p.ldx % 8 == 0 && p.n % (f32_out ? 4 : 8) == 0 && p.m <= INT32_MAX && p.n <= INT32_MAX &&
         p.k <= INT32_MAX;
}

}  // namespace

LinearKernel linear_kernel(const LinearProblem& p) {
  LLAMA4_CHECK_ARG(p.m >= 0 && p.n >= 0 && p.k >= 0 && p.groups >= 0 && p.ldx >= 0,
                   "linear_kernel: sizes must be >= 0, got m = ", p.m, ", n = ", p.n, ", k = ", p.k,
                   ", groups = ", p.groups, ", ldx = ", p.ldx);
  if (p.m <= kLinearGemvMaxRows) return LinearKernel::Gemv;
  if (!cutlass_eligible(p)) return LinearKernel::Tiled;
  if (p.groups > 0) {
    const int64_t busy = std::max<int64_t>(1, std::min(p.m, p.groups));  // groups that can have rows
    const int64_t mean_rows = (p.m + busy - 1) / busy;
    return mean_rows <= kMoeSwapAbMaxRowsPerExpert ? LinearKernel::CutlassGroupedSwapAB
                                                   : LinearKernel::CutlassGrouped;
  }
  if (p.m <= kLinearSmallMaxRows) return LinearKernel::CutlassSmall;
  if (p.m <= kLinearMediumMaxRows && p.out_dtype == DType::BF16) return LinearKernel::CutlassMedium;
  return LinearKernel::CutlassLarge;
}

}  // namespace llama4
