// Host-side entry points of the CUDA runtime wrapper (plain C++: no CUDA headers here).
// Streams are cudaStream_t values passed as void* (llama4/context.h). Without the CUDA backend,
// core/cuda_unavailable.cpp defines them to report that CUDA is absent.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace llama4::cuda {

// Long-lived device memory (weights, KV cache): cudaMalloc; freeing it synchronises the device.
std::shared_ptr<void> allocate(size_t nbytes, int device);
// Stream-ordered memory from the device's caching pool (cuda/allocator.cu): usable by work queued
// on `stream` at once; when the last owner drops it, it goes back to the pool ordered after the
// work queued so far on `stream` and on every stream passed to record_stream_use().
std::shared_ptr<void> allocate_async(size_t nbytes, int device, void* stream);
// Orders the return of `storage` (from allocate_async) to the pool after the work queued on
// `stream` by the time it is freed (torch's record_stream; used when a tensor is handed out
// through DLPack to a consumer on another stream). A no-op for other storage.
void record_stream_use(const std::shared_ptr<void>& storage, void* stream);

struct PoolStats {
  int64_t reserved_bytes = 0;  // memory the pool holds from the driver
  int64_t used_bytes = 0;      // of which handed out now
  int64_t reserved_high = 0;   // high-water marks since the pool was created
  int64_t used_high = 0;
};
PoolStats pool_stats(int device);

void memset_zero(void* ptr, size_t nbytes, int device, void* stream);
// kind: 0 host->device, 1 device->host, 2 device->device, queued on `stream`. Host->device returns
// once the host buffer may be reused; device->host returns once the data is in host memory (it
// waits for `stream`); device->device returns at once.
void memcpy(void* dst, const void* src, size_t nbytes, int kind, int device, void* stream);
// Makes `waiter` wait (on the device, not the host) for the work queued so far on `producer`.
void stream_wait(int device, void* waiter, void* producer);
void synchronize_stream(int device, void* stream);
// Whether the work queued on `stream` has finished (cudaStreamQuery; never waits).
bool stream_done(int device, void* stream);
// Makes `device` the calling thread's current device (libraries such as NCCL use the current one).
void set_device(int device);

int device_count();             // 0 on any error (no driver, no device); never throws
// The device's free and total memory as the driver sees it (cudaMemGetInfo: every allocation of
// every process counts), for sizing the KV cache from a fraction of the GPU.
struct MemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};
MemoryInfo memory_info(int device);
std::string runtime_version();  // "13.0"
void synchronize(int device);   // the whole device

}  // namespace llama4::cuda
