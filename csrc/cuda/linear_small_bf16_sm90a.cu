// One configuration of the CUTLASS bf16 dense GEMM behind linear (cuda/linear_sm90a.cuh):
// LinearKernel::CutlassSmall with bf16 output, alone in its translation unit so the configurations
// compile in parallel.
#include "cuda/linear_sm90a.cuh"

namespace llama4::cuda::sm90a {
template void dense_gemm_bf16_config<LinearKernel::CutlassSmall, false>(const DenseGemmBf16&, const Context&,
                                                                int, cudaStream_t);
}  // namespace llama4::cuda::sm90a
