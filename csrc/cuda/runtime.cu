// The CUDA runtime wrapper declared in cuda/runtime.h: device memory owned through shared_ptr,
// memset/memcpy, device count, runtime version, synchronize. All work goes to the legacy default
// stream, which PyTorch also uses by default, so our kernels and torch's stay ordered.
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

void memset_zero(void* ptr, size_t nbytes, int device) {
  if (nbytes == 0) return;
  DeviceGuard guard(device);
  LLAMA4_CUDA_CHECK(cudaMemsetAsync(ptr, 0, nbytes, 0));
}

void memcpy(void* dst, const void* src, size_t nbytes, int kind, int device) {
  LLAMA4_CHECK(kind >= 0 && kind <= 2, "cuda::memcpy: kind must be 0 (host->device), 1 "
               "(device->host) or 2 (device->device), got ", kind);
  if (nbytes == 0) return;
  static constexpr cudaMemcpyKind kKinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                              cudaMemcpyDeviceToDevice};
  DeviceGuard guard(device);
  // cudaMemcpy waits for earlier default-stream work; host->device returns once the host buffer
  // may be reused, device->host once the data is in host memory; device->device is ordered on the
  // default stream before any later work there.
  LLAMA4_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kKinds[kind]));
}

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
