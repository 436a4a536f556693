// CUDA graphs for the decode step (model/decode_graphs.h), in plain C++ (no CUDA headers): a
// stream to capture on, stream capture into an instantiated graph, replay, and the pinned host
// buffers and events of the step's uploads. Without the CUDA backend, core/cuda_unavailable.cpp
// defines them to report that CUDA is absent.
//
// Memory during a capture (cuda/allocator.cu): a stream-ordered allocation made on the capturing
// stream becomes an allocation node of the graph (cudaMallocFromPoolAsync under capture), owned by
// the graph, at an address fixed for the graph's lifetime, and its free a free node of the graph,
// so every temporary of the captured forward lives in the graph's own memory (CUDA's graph memory
// pool plays the part of torch's private graph pools). Memory allocated before the capture and
// released during it is returned to the pool only after the capture ends (a free node would free
// it at every replay); memory allocated during the capture must be released during it (the capture
// fails otherwise: the graph could not be launched twice).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace llama4::cuda {

// A stream of `device` that does not synchronise with the legacy default stream (so a capture on
// it is not broken by legacy-stream work elsewhere); destroyed with the handle.
std::shared_ptr<void> new_stream(int device);

// Starts capturing the work queued on `stream` (cudaStreamCaptureModeThreadLocal: a call of this
// thread that cannot be captured, such as cudaMalloc or a synchronisation, fails the capture
// instead of running; other threads are unaffected). Nothing queued during the capture runs.
void begin_capture(int device, void* stream);
// Ends the capture begun on `stream` and instantiates the graph. Error (no graph) when the capture
// was invalidated by an uncapturable call or left memory allocated during it unfreed. The returned
// handle owns the executable graph (cudaGraphExec_t).
std::shared_ptr<void> end_capture(int device, void* stream);
// Ends a capture after an error, dropping what was captured; never throws.
void abort_capture(int device, void* stream) noexcept;
// Queues one replay of `graph` (from end_capture) on `stream`.
void launch_graph(const std::shared_ptr<void>& graph, int device, void* stream);

// The device's graph memory pool (allocation nodes of every graph): bytes in use by graphs and
// reserved from the driver (cudaDeviceGetGraphMemAttribute).
struct GraphMemory {
  int64_t used_bytes = 0;
  int64_t reserved_bytes = 0;
};
GraphMemory graph_memory(int device);
// Returns the graph memory pool's unused physical memory to the driver (after graphs were destroyed).
void trim_graph_memory(int device);

// Page-locked host memory (cudaMallocHost): copies from it to the device are truly asynchronous,
// so the buffer must not be rewritten before the copy has run (see the events below).
std::shared_ptr<void> allocate_pinned(size_t nbytes);
// An event of `device` (no timing); record_event marks the work queued so far on `stream`,
// wait_event blocks the host until that work has finished (at once for an unrecorded event).
std::shared_ptr<void> new_event(int device);
void record_event(const std::shared_ptr<void>& event, int device, void* stream);
void wait_event(const std::shared_ptr<void>& event, int device);

}  // namespace llama4::cuda
