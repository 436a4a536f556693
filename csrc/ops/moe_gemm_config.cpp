// The tile-configuration heuristic of the CUDA FP8 grouped GEMM (llama4/moe_fp8.h): a pure
// function of (rows, experts), built on every backend so it can be unit-tested and printed
// anywhere. The two configurations are the two kernels compiled in cuda/moe_gemm_sm90a.cu.
#include <algorithm>

#include "llama4/error.h"
#include "llama4/moe_fp8.h"

namespace llama4 {

std::string MoeGemmConfig::name() const {
  return detail::concat(swap_ab ? "swap_ab " : "", schedule, " ", tile_m, "x", tile_n, "x", tile_k,
                        " cluster ", cluster_m, "x", cluster_n);
}

MoeGemmConfig moe_gemm_config(int64_t rows, int64_t experts) {
  LLAMA4_CHECK_ARG(rows >= 0 && experts >= 1, "moe_gemm_config: need rows >= 0 and experts >= 1, got ",
                   rows, " rows, ", experts, " experts");
  MoeGemmConfig c;  // prefill: cooperative 128x128x128, 2 CTAs along N share the A tile (multicast)
  const int64_t busy = std::max<int64_t>(1, std::min(rows, experts));  // experts that can have rows
  const int64_t mean_rows = (rows + busy - 1) / busy;
  if (mean_rows <= kMoeSwapAbMaxRowsPerExpert) {
    // Decode: weight bandwidth bound. 64 weight rows x 32 tokens per tile keeps smem stages small,
    // so many stages are in flight to hide HBM latency; ping-pong overlaps one warp group's
    // epilogue with the other's mainloop.
    c.swap_ab = true;
    c.tile_m = 64;
    c.tile_n = 32;
    c.tile_k = 128;
    c.cluster_m = 1;
    c.cluster_n = 1;
    c.schedule = "pingpong";
  }
  return c;
}

}  // namespace llama4
