// The kernel-choice rule of the CUDA INT4 grouped GEMM (llama4/moe_int4_config.h): a pure function
// of the shapes, built on every backend.
#include <algorithm>

#include "llama4/error.h"
#include "llama4/moe_int4_config.h"

namespace llama4 {

const char* moe_int4_kernel_name(MoeInt4Kernel kernel) {
  return kernel == MoeInt4Kernel::Cutlass ? "cutlass" : "gemv";
}

MoeInt4GemmConfig moe_int4_gemm_config(int64_t rows, int64_t experts, int64_t n, int64_t group_size) {
  LLAMA4_CHECK_ARG(rows >= 0 && experts >= 1 && n >= 1 && group_size >= 1, "moe_int4_gemm_config: "
                   "need rows >= 0, experts >= 1, n >= 1 and group_size >= 1, got ", rows, " rows, ",
                   experts, " experts, n = ", n, ", group_size = ", group_size);
  MoeInt4GemmConfig c;  // Gemv: takes every shape
  const bool cutlass_ok = n % 8 == 0 && group_size % kMoeInt4CutlassGroupMultiple == 0;
  const int64_t busy = std::max<int64_t>(1, std::min(rows, experts));  // experts that can have rows
  const int64_t mean_rows = (rows + busy - 1) / busy;
  if (cutlass_ok && mean_rows > kMoeInt4GemvMaxRowsPerExpert) c.kernel = MoeInt4Kernel::Cutlass;
  return c;
}

}  // namespace llama4
