// The stream-ordered caching allocator behind Context::empty (cuda/runtime.h allocate_async):
// one CUDA memory pool per device (cudaMemPoolCreate), with cudaMallocFromPoolAsync /
// cudaFreeAsync. The pool's release threshold is "never", so memory freed on a stream stays
// reserved and the next allocation on that stream (or, once the free has completed, on any stream)
// reuses it: after the first step of a given shape, a step makes no cudaMalloc, no cudaFree and no
// synchronisation.
//
// CUDA graph capture (cuda/graph.h; torch's cudaMallocAsync backend does the same): on a stream that
// cuda/graph.cu is capturing, cudaMallocFromPoolAsync and cudaFreeAsync become the graph's
// allocation and free nodes (memory owned by the graph, at addresses fixed for its lifetime). Memory
// allocated BEFORE the capture and released during it must not become a free node (every replay
// would free it again): its free is deferred until the capture ends. Allocations made during the
// capture are counted, so that end_capture can refuse a graph that leaves one alive.
//
// Why the runtime's pool and not our own free lists (PyTorch's CUDACachingAllocator): stream
// ordering, cross-stream reuse through events, graph capture and defragmentation come with it, and
// PyTorch itself offers it as a backend (PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync). Our pool
// is separate from torch's, so the two never hand each other's memory out.
//
// A tensor handed to another stream (DLPack export to a consumer on a different stream) records
// that stream; the free then waits for it on the device, as torch's record_stream does.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/capture_state.cuh"
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

// Returns p to the pool ordered after the work queued so far on `stream` and on `uses`. A stream
// destroyed by its owner meanwhile: free synchronously instead (cudaFree accepts pool memory and
// waits for the device). Never throws (deleters); at process exit the runtime may already be gone,
// so errors are dropped. The caller has made the device current.
void free_after(void* p, cudaStream_t stream, const std::vector<cudaStream_t>& uses) {
  for (cudaStream_t u : uses) {
    cudaEvent_t ev = nullptr;
    if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) continue;
    if (cudaEventRecord(ev, u) == cudaSuccess) (void)cudaStreamWaitEvent(stream, ev, 0);
    (void)cudaEventDestroy(ev);  // released once the wait has completed
  }
  if (cudaFreeAsync(p, stream) != cudaSuccess) {
    (void)cudaGetLastError();
    (void)cudaFree(p);
  }
  (void)cudaGetLastError();
}

// The captures in progress (cuda/graph.cu), by stream: allocations made during each and still
// live, and the frees deferred until it ends. Never destroyed: deleters may run at process exit.
struct DeferredFree {
  void* p;
  int device;
  std::vector<cudaStream_t> uses;
};
struct CaptureState {
  int device = 0;
  int64_t live = 0;
  std::vector<DeferredFree> deferred;
};
struct Captures {
  std::mutex mu;
  std::unordered_map<cudaStream_t, CaptureState> by_stream;
  std::atomic<int> active{0};  // by_stream.size(), read without the lock on the common path
};
Captures& captures() {
  static Captures* c = new Captures;
  return *c;
}

// The deleter of allocate_async memory. `uses`: other streams that received the tensor;
// `captured`: allocated while `stream` was being captured (a graph's allocation node).
struct AsyncFree {
  int device;
  cudaStream_t stream;
  std::vector<cudaStream_t> uses;
  bool captured = false;

  void operator()(void* p) const {
    int previous = -1;
    const bool restore = cudaGetDevice(&previous) == cudaSuccess && previous != device;
    if (restore) (void)cudaSetDevice(device);
    Captures& c = captures();
    bool done = false;
    if (captured || c.active.load(std::memory_order_acquire) > 0) {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.by_stream.find(stream);
      if (captured) {
        // During its capture: the graph's free node. After it (end_capture has refused the
        // graph): a graph allocation may be freed outside its graph; errors are dropped.
        if (it != c.by_stream.end()) --it->second.live;
        (void)cudaFreeAsync(p, stream);
        (void)cudaGetLastError();
        done = true;
      } else if (it != c.by_stream.end()) {
        it->second.deferred.push_back({p, device, uses});  // allocated before the capture
        done = true;
      }
    }
    if (!done) free_after(p, stream, uses);
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
  AsyncFree deleter{device, s, {}, false};
  Captures& c = captures();
  if (c.active.load(std::memory_order_acquire) > 0) {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.by_stream.find(s);
    if (it != c.by_stream.end()) {
      deleter.captured = true;
      ++it->second.live;
    }
  }
  return std::shared_ptr<void>(p, std::move(deleter));
}

namespace capture_state {

void capture_began(int device, cudaStream_t stream) {
  Captures& c = captures();
  std::lock_guard<std::mutex> lock(c.mu);
  LLAMA4_CHECK(c.by_stream.count(stream) == 0, "a CUDA graph capture is already in progress on this stream");
  c.by_stream[stream].device = device;
  c.active.store(int(c.by_stream.size()), std::memory_order_release);
}

int64_t capture_ended(cudaStream_t stream) {
  CaptureState state;
  {
    Captures& c = captures();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.by_stream.find(stream);
    if (it == c.by_stream.end()) return 0;
    state = std::move(it->second);
    c.by_stream.erase(it);
    c.active.store(int(c.by_stream.size()), std::memory_order_release);
  }
  int previous = -1;
  (void)cudaGetDevice(&previous);
  for (const DeferredFree& f : state.deferred) {
    (void)cudaSetDevice(f.device);
    free_after(f.p, stream, f.uses);
  }
  if (previous >= 0) (void)cudaSetDevice(previous);
  (void)cudaGetLastError();
  return state.live;
}

}  // namespace capture_state

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
