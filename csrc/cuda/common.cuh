// Host-side helpers shared by the CUDA launchers: the error-check macro (CUDA errors become
// llama4::Error with the call, file and line), a guard that makes a tensor's device current for
// the duration of a launch, the context's stream, and launch-configuration arithmetic. No kernels.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "llama4/context.h"
#include "llama4/error.h"

// Throws llama4::Error (RuntimeError in Python) naming the failed call. cudaGetLastError clears
// the runtime's last-error slot so that a later launch check does not report this failure again
// (sticky errors, which poison the context, stay; nothing can clear them).
#define LLAMA4_CUDA_CHECK(expr)                                                                  \
  do {                                                                                           \
    const cudaError_t llama4_err_ = (expr);                                                      \
    if (llama4_err_ != cudaSuccess) {                                                            \
      (void)cudaGetLastError();                                                                  \
      throw ::llama4::Error(::llama4::detail::concat("CUDA error ", cudaGetErrorName(llama4_err_), \
                                                     ": ", cudaGetErrorString(llama4_err_),        \
                                                     " in ", #expr, " (", __FILE__, ":",          \
                                                     __LINE__, ")"));                             \
    }                                                                                            \
  } while (0)

// After a <<<...>>> launch: configuration errors (bad grid, too much shared memory) surface here.
#define LLAMA4_CUDA_CHECK_LAUNCH() LLAMA4_CUDA_CHECK(cudaGetLastError())

namespace llama4::cuda {

// Makes `device` current and restores the previous device on scope exit, so a launch on cuda:1
// does not leave the caller's (e.g. PyTorch's) current device changed.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    LLAMA4_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) LLAMA4_CUDA_CHECK(cudaSetDevice(device));
    else previous_ = -1;  // nothing to restore
  }
  ~DeviceGuard() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);  // destructors must not throw
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// The stream an op of ctx queues its work on.
inline cudaStream_t stream_of(const Context& ctx) { return static_cast<cudaStream_t>(ctx.stream()); }

// Makes ctx's device current for an op's launches (DeviceGuard) and names its stream.
struct OpScope {
  explicit OpScope(const Context& ctx) : guard(ctx.device().index), stream(stream_of(ctx)) {}
  DeviceGuard guard;
  cudaStream_t stream;
};

// Threads per block of the elementwise and row kernels.
constexpr int kBlockThreads = 256;
// Grid-stride kernels never need more blocks than this to fill any GPU; extra work loops.
constexpr int64_t kMaxGridBlocks = int64_t(1) << 20;

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for `items` work items at `items_per_block` each: at least 1, at most kMaxGridBlocks.
inline unsigned grid_blocks(int64_t items, int64_t items_per_block) {
  return unsigned(std::clamp<int64_t>(ceil_div(items, items_per_block), 1, kMaxGridBlocks));
}

inline bool is_aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

}  // namespace llama4::cuda
