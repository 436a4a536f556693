// The stream-ordered caching allocator behind Context::empty (cuda/runtime.h allocate_async):
// one CUDA memory pool per device (cudaMemPoolCreate), with cudaMallocFromPoolAsync /
// cudaFreeAsync. The pool's release threshold is "never", so memory freed on a stream stays
// reserved and the next allocation on that stream (or, once the free has completed, on any stream)
// reuses it: after the first step of a given shape, a step makes no cudaMalloc, no cudaFree and no
// synchronisation. Inside a CUDA graph capture the same calls become the graph's own allocation
// nodes, so captured steps need no special path.
//
// Why the runtime's pool and not our own free lists (PyTorch's CUDACachingAllocator): stream
// ordering, cross-stream reuse through events, graph capture and defragmentation come with it, and
// PyTorch itself offers it as a backend (PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync). Our pool
// is separate from torch's, so the two never hand each other's memory out.
//
// A tensor handed to another stream (DLPack export to a consumer on a different stream) records
// that stream; the free then waits for it on the device, as torch's record_stream does.
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <mutex>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/runtime.h"

namespace llama4::cuda {

namespace {

constexpr int kMaxDevices = 64;

// The pool of each device, created on first use and kept for the life of the process (destroying
// it at exit would race the runtime's own teardown).
cudaMemPool_t pool_of(int device) {
  static std::mutex mu;
  static cudaMemPool_t pools[kMaxDevices] = {};
  LLAMA4_CHECK(device >= 0 && device < kMaxDevices, "cuda:", device, " is beyond the ", kMaxDevices,
               " devices the allocator supports");
  std::lock_guard<std::mutex> lock(mu);
  if (pools[device]) return pools[device];
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  cudaMemPool_t pool = nullptr;
  LLAMA4_CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
  uint64_t keep_all = std::numeric_limits<uint64_t>::max();
  LLAMA4_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
  pools[device] = pool;
  return pool;
}

// The deleter of allocate_async memory. `uses`: other streams that received the tensor.
struct AsyncFree {
  int device;
  cudaStream_t stream;
  std::vector<cudaStream_t> uses;

  void operator()(void* p) const {
    int previous = -1;
    const bool restore = cudaGetDevice(&previous) == cudaSuccess && previous != device;
    if (restore) (void)cudaSetDevice(device);
    for (cudaStream_t u : uses) {
      cudaEvent_t ev = nullptr;
      if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) continue;
      if (cudaEventRecord(ev, u) == cudaSuccess) (void)cudaStreamWaitEvent(stream, ev, 0);
      (void)cudaEventDestroy(ev);  // released once the wait has completed
    }
    // A stream destroyed by its owner meanwhile: free synchronously instead (cudaFree accepts
    // pool memory and waits for the device). Destructors must not throw; at process exit the
    // runtime may already be gone, so errors are dropped.
    if (cudaFreeAsync(p, stream) != cudaSuccess) {
      (void)cudaGetLastError();
      (void)cudaFree(p);
    }
    (void)cudaGetLastError();
    if (restore) (void)cudaSetDevice(previous);
  }
};

int64_t pool_attribute(cudaMemPool_t pool, cudaMemPoolAttr attr) {
  uint64_t v = 0;
  LLAMA4_CUDA_CHECK(cudaMemPoolGetAttribute(pool, attr, &v));
  return int64_t(v);
}

}  // namespace

std::shared_ptr<void> allocate_async(size_t nbytes, int device, void* stream) {
  if (nbytes == 0) return {};
  DeviceGuard guard(device);
  cudaMemPool_t pool = pool_of(device);
  const auto s = static_cast<cudaStream_t>(stream);
  void* p = nullptr;
  const cudaError_t err = cudaMallocFromPoolAsync(&p, nbytes, pool, s);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(detail::concat("CUDA error ", cudaGetErrorName(err), ": ", cudaGetErrorString(err),
                               " allocating ", nbytes, " bytes on cuda:", device,
                               " from the stream-ordered pool (", __FILE__, ":", __LINE__, ")"));
  }
  return std::shared_ptr<void>(p, AsyncFree{device, s, {}});
}

void record_stream_use(const std::shared_ptr<void>& storage, void* stream) {
  AsyncFree* f = std::get_deleter<AsyncFree>(storage);
  if (f == nullptr) return;  // cudaMalloc'ed or host memory: its free waits for everything
  const auto s = static_cast<cudaStream_t>(stream);
  if (s == f->stream) return;
  for (cudaStream_t u : f->uses)
    if (u == s) return;
  f->uses.push_back(s);  // callers hold the GIL (DLPack export), so no two threads race here
}

PoolStats pool_stats(int device) {
  DeviceGuard guard(device);
  cudaMemPool_t pool = pool_of(device);
  PoolStats s;
  s.reserved_bytes = pool_attribute(pool, cudaMemPoolAttrReservedMemCurrent);
  s.used_bytes = pool_attribute(pool, cudaMemPoolAttrUsedMemCurrent);
  s.reserved_high = pool_attribute(pool, cudaMemPoolAttrReservedMemHigh);
  s.used_high = pool_attribute(pool, cudaMemPoolAttrUsedMemHigh);
  return s;
}

}  // namespace llama4::cuda
