// One configuration of the CUTLASS bf16 grouped GEMM behind grouped_linear
// (cuda/grouped_linear_sm90a.cuh): LinearKernel::CutlassGrouped, alone in its translation
// unit so the configurations compile in parallel.
#include "cuda/grouped_linear_sm90a.cuh"

namespace llama4::cuda::sm90a {
template size_t grouped_gemm_bf16_config_workspace_bytes<false>(int, int);
template void grouped_gemm_bf16_config<false>(const GroupedGemmBf16&, void*, size_t, int, cudaStream_t);
}  // namespace llama4::cuda::sm90a
