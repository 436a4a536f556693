// llama4::build_info(), cuda_available() and the CPU thread setting.
#include "llama4/build_info.h"

#include <omp.h>

#include "cuda/runtime.h"
#include "llama4_build_config.h"
#include "text/pretokenizer.h"

namespace llama4 {

BuildInfo build_info() {
  BuildInfo info;
  info.version = LLAMA4_VERSION_STRING;
  info.backends.push_back("cpu");
#if LLAMA4_WITH_CUDA
  info.backends.push_back("cuda");
  info.cuda_runtime_version = cuda::runtime_version();
  info.cuda_archs = LLAMA4_CUDA_ARCHS_STRING;
  info.cutlass_version = LLAMA4_CUTLASS_VERSION_STRING;
#endif
  info.blas = LLAMA4_BLAS_STRING;
  info.tokenizer = LLAMA4_WITH_TOKENIZER;
  info.pcre2_version = text::pcre2_version_string();
  info.compiler = LLAMA4_CXX_COMPILER_STRING;
  info.cpu_threads = omp_get_max_threads();
  return info;
}

int cuda_device_count() {
#if LLAMA4_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

void set_cpu_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

}  // namespace llama4
