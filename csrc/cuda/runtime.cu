// The CUDA runtime wrapper declared in cuda/runtime.h: long-lived device memory owned through
// shared_ptr, stream-ordered memset/memcpy, stream waits, device count, runtime version,
// synchronisation. (The stream-ordered caching allocator is cuda/allocator.cu.)
#include <cuda_runtime.h>

#include <string>

#include "cuda/common.cuh"
#include "cuda/runtime.h"

namespace llama4::cuda {

std::shared_ptr<void> allocate(size_t nbytes, int device) {
  if (nbytes == 0) return {};  // a null pointer with no deleter: nothing to free
  DeviceGuard guard(device);
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, nbytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(detail::concat("CUDA error ", cudaGetErrorName(err), ": ", cudaGetErrorString(err),
                               " allocating ", nbytes, " bytes on cuda:", device, " (", __FILE__,
                               ":", __LINE__, ")"));
  }
  // cudaFree must run with the owning device current; a deleter cannot throw, and at process
  // exit the runtime may already be unloading, so errors are dropped.
  return std::shared_ptr<void>(p, [device](void* q) {
    int previous = -1;
    const bool restore = cudaGetDevice(&previous) == cudaSuccess && previous != device;
    (void)cudaSetDevice(device);
    (void)cudaFree(q);
    if (restore) (void)cudaSetDevice(previous);
    (void)cudaGetLastError();
  });
}

void memset_zero(void* ptr, size_t nbytes, int device, void* stream) {
  if (nbytes == 0) return;
  DeviceGuard guard(device);
  LLAMA4_CUDA_CHECK(cudaMemsetAsync(ptr, 0, nbytes, static_cast<cudaStream_t>(stream)));
}

void memcpy(void* dst, const void* src, size_t nbytes, int kind, int device, void* stream) {
  LLAMA4_CHECK(kind >= 0 && kind <= 2, "cuda::memcpy: kind must be 0 (host->device), 1 "
               "(device->host) or 2 (device->device), got ", kind);
  if (nbytes == 0) return;
  static constexpr cudaMemcpyKind kKinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                              cudaMemcpyDeviceToDevice};
  DeviceGuard guard(device);
  const auto s = static_cast<cudaStream_t>(stream);
  // Host->device from pageable memory returns once the runtime has staged the source, so the
  // caller may reuse it; from pinned memory the copy is truly asynchronous and the caller must
  // keep the buffer until the stream passes the copy (the pinned staging ring does).
  LLAMA4_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kKinds[kind], s));
  // The host cannot order its reads after a stream: wait for the data.
  if (kind == 1) LLAMA4_CUDA_CHECK(cudaStreamSynchronize(s));
}

void stream_wait(int device, void* waiter, void* producer) {
  if (waiter == producer) return;
  DeviceGuard guard(device);
  cudaEvent_t ev = nullptr;
  LLAMA4_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  const cudaError_t rec = cudaEventRecord(ev, static_cast<cudaStream_t>(producer));
  const cudaError_t wait = rec == cudaSuccess
                               ? cudaStreamWaitEvent(static_cast<cudaStream_t>(waiter), ev, 0)
                               : rec;
  (void)cudaEventDestroy(ev);  // released by the runtime once the wait has completed
  LLAMA4_CUDA_CHECK(wait);
}

void synchronize_stream(int device, void* stream) {
  DeviceGuard guard(device);
  LLAMA4_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}

bool stream_done(int device, void* stream) {
  DeviceGuard guard(device);
  const cudaError_t e = cudaStreamQuery(static_cast<cudaStream_t>(stream));
  if (e == cudaErrorNotReady) return false;
  LLAMA4_CUDA_CHECK(e);
  return true;
}

void set_device(int device) { LLAMA4_CUDA_CHECK(cudaSetDevice(device)); }

int device_count() {
  // Without a driver this returns cudaErrorInsufficientDriver, without a GPU cudaErrorNoDevice:
  // both mean "no usable device". Clear the error so it does not surface in a later check.
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

MemoryInfo memory_info(int device) {
  DeviceGuard guard(device);
  size_t free_bytes = 0, total_bytes = 0;
  LLAMA4_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return {int64_t(free_bytes), int64_t(total_bytes)};
}

std::string runtime_version() {
  int v = 0;
  if (cudaRuntimeGetVersion(&v) != cudaSuccess) {  // needs no driver; fall back to the headers
    (void)cudaGetLastError();
    v = CUDART_VERSION;
  }
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

void synchronize(int device) {
  DeviceGuard guard(device);
  LLAMA4_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace llama4::cuda
