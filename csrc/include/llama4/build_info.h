// What this build of libllama4 contains, and whether a CUDA device can be used right now.
#pragma once
#include <string>
#include <vector>

namespace llama4 {

struct BuildInfo {
  std::string version;
  std::vector<std::string> backends;  // "cpu", and "cuda" when the CUDA backend was compiled
  std::string cuda_runtime_version;   // "13.0" (empty without CUDA)
  std::string cuda_archs;             // e.g. "80;90a-real;90a-real"
  std::string cutlass_version;        // e.g. "4.2.0"
  std::string blas;                   // which BLAS the CPU matmuls use
  bool tokenizer = false;             // llama4::Tokenizer can encode (built with PCRE2)
  std::string pcre2_version;          // e.g. "PCRE2 10.42" (empty without the tokenizer)
  std::string compiler;
  int cpu_threads = 1;                // OpenMP threads the CPU kernels use
};

BuildInfo build_info();
// True when the CUDA backend was built and a CUDA device is usable (never throws).
bool cuda_available();
int cuda_device_count();
// OpenMP threads for the CPU kernels (0 keeps the current setting).
void set_cpu_threads(int n);

}  // namespace llama4
