// CUDA graph capture and replay, pinned host buffers and events (contracts: cuda/graph.h).
#include <cuda_runtime.h>

#include "cuda/capture_state.cuh"
#include "cuda/common.cuh"
#include "cuda/graph.h"

namespace llama4::cuda {

namespace {
cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
}  // namespace

std::shared_ptr<void> new_stream(int device) {
  DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  LLAMA4_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return std::shared_ptr<void>(s, [device](void* q) {
    int previous = -1;
    const bool restore = cudaGetDevice(&previous) == cudaSuccess && previous != device;
    if (restore) (void)cudaSetDevice(device);
    (void)cudaStreamDestroy(static_cast<cudaStream_t>(q));  // waits for nothing; frees once idle
    if (restore) (void)cudaSetDevice(previous);
    (void)cudaGetLastError();
  });
}

void begin_capture(int device, void* stream) {
  DeviceGuard guard(device);
  capture_state::capture_began(device, as_stream(stream));
  const cudaError_t e = cudaStreamBeginCapture(as_stream(stream), cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    (void)capture_state::capture_ended(as_stream(stream));
    LLAMA4_CUDA_CHECK(e);
  }
}

void abort_capture(int device, void* stream) noexcept {
  int previous = -1;
  const bool restore = cudaGetDevice(&previous) == cudaSuccess && previous != device;
  if (restore) (void)cudaSetDevice(device);
  cudaGraph_t graph = nullptr;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(as_stream(stream), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone &&
      cudaStreamEndCapture(as_stream(stream), &graph) == cudaSuccess && graph)
    (void)cudaGraphDestroy(graph);
  (void)capture_state::capture_ended(as_stream(stream));
  (void)cudaGetLastError();
  if (restore) (void)cudaSetDevice(previous);
}

std::shared_ptr<void> end_capture(int device, void* stream) {
  DeviceGuard guard(device);
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(as_stream(stream), &graph);
  const int64_t live = capture_state::capture_ended(as_stream(stream));
  if (ended != cudaSuccess || graph == nullptr) {
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    throw Error(detail::concat("CUDA graph capture failed: ", cudaGetErrorName(ended), ": ",
                               cudaGetErrorString(ended), " (a call in the captured step cannot be captured: "
                               "a synchronisation, cudaMalloc, or a copy the host waits for)"));
  }
  if (live != 0) {
    (void)cudaGraphDestroy(graph);
    throw Error(detail::concat("CUDA graph capture: ", live, " allocation(s) made during the capture are "
                               "still alive after it; a captured step must release its temporaries"));
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);  // the executable graph is independent of it
  LLAMA4_CUDA_CHECK(made);
  return std::shared_ptr<void>(exec, [device](void* q) {
    int previous = -1;
    const bool restore = cudaGetDevice(&previous) == cudaSuccess && previous != device;
    if (restore) (void)cudaSetDevice(device);
    (void)cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(q));
    if (restore) (void)cudaSetDevice(previous);
    (void)cudaGetLastError();
  });
}

void launch_graph(const std::shared_ptr<void>& graph, int device, void* stream) {
  LLAMA4_CHECK(graph != nullptr, "launch_graph: no graph");
  DeviceGuard guard(device);
  LLAMA4_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.get()), as_stream(stream)));
}

GraphMemory graph_memory(int device) {
  DeviceGuard guard(device);
  uint64_t used = 0, reserved = 0;
  LLAMA4_CUDA_CHECK(cudaDeviceGetGraphMemAttribute(device, cudaGraphMemAttrUsedMemCurrent, &used));
  LLAMA4_CUDA_CHECK(cudaDeviceGetGraphMemAttribute(device, cudaGraphMemAttrReservedMemCurrent, &reserved));
  return {int64_t(used), int64_t(reserved)};
}

void trim_graph_memory(int device) { LLAMA4_CUDA_CHECK(cudaDeviceGraphMemTrim(device)); }

std::shared_ptr<void> allocate_pinned(size_t nbytes) {
  if (nbytes == 0) return {};
  void* p = nullptr;
  LLAMA4_CUDA_CHECK(cudaMallocHost(&p, nbytes));
  return std::shared_ptr<void>(p, [](void* q) {
    (void)cudaFreeHost(q);
    (void)cudaGetLastError();
  });
}

std::shared_ptr<void> new_event(int device) {
  DeviceGuard guard(device);
  cudaEvent_t ev = nullptr;
  LLAMA4_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  return std::shared_ptr<void>(ev, [](void* q) {
    (void)cudaEventDestroy(static_cast<cudaEvent_t>(q));
    (void)cudaGetLastError();
  });
}

void record_event(const std::shared_ptr<void>& event, int device, void* stream) {
  DeviceGuard guard(device);
  LLAMA4_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event.get()), as_stream(stream)));
}

void wait_event(const std::shared_ptr<void>& event, int device) {
  DeviceGuard guard(device);
  LLAMA4_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event.get())));
}

}  // namespace llama4::cuda
