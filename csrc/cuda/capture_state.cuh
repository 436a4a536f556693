// The allocator's side of a CUDA graph capture (cuda/allocator.cu), called by cuda/graph.cu around
// a capture on `stream`: see cuda/graph.h for what memory does during a capture.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace llama4::cuda::capture_state {

// From now on, allocations on `stream` are counted as the capture's and frees of memory allocated
// before are deferred. Error if a capture is already registered on `stream`.
void capture_began(int device, cudaStream_t stream);
// The capture on `stream` is over: queues the deferred frees on `stream` and returns how many
// allocations made during the capture are still live (0 for a capture that can be replayed).
// Never throws.
int64_t capture_ended(cudaStream_t stream);

}  // namespace llama4::cuda::capture_state
