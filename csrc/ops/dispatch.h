// The one place that knows whether the CUDA backend was compiled: op entries write
//   switch (device) { case CPU: cpu::op(...); break; case CUDA: LLAMA4_CUDA_CALL(cuda::op(...)); }
// and, without the CUDA backend, the CUDA branch raises a clear TypeError instead of linking.
#pragma once
#include <string>

#include "llama4/error.h"
#include "llama4/tensor.h"

namespace llama4::detail {
[[noreturn]] inline void throw_no_cuda_backend(const char* op) {
  throw ::llama4::TypeError(std::string(op) +
                            ": got CUDA tensors, but this build of llama4_native has no CUDA "
                            "backend (rebuild with nvcc on PATH or LLAMA4_CUDA=ON)");
}
// For ops whose CUDA kernel does not exist yet (the CPU backend is the reference; the CUDA model
// path is built op by op).
[[noreturn]] inline void throw_cuda_not_implemented(const char* op) {
  throw ::llama4::TypeError(std::string(op) + ": no CUDA kernel yet; run this op on the CPU");
}
}  // namespace llama4::detail

#if LLAMA4_WITH_CUDA
#define LLAMA4_CUDA_CALL(...) __VA_ARGS__
#else
#define LLAMA4_CUDA_CALL(...) ::llama4::detail::throw_no_cuda_backend(__func__)
#endif
