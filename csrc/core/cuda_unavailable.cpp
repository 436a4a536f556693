// The CUDA runtime wrapper for builds without the CUDA backend: every call reports it clearly.
#include "llama4/error.h"
#include "cuda/graph.h"
#include "cuda/runtime.h"

#if !LLAMA4_WITH_CUDA
namespace llama4::cuda {

[[noreturn]] static void no_cuda(const char* what) {
  throw ::llama4::TypeError(std::string(what) +
                            ": this build of llama4_native has no CUDA backend "
                            "(rebuild with nvcc on PATH or LLAMA4_CUDA=ON)");
}
std::shared_ptr<void> allocate(size_t, int) { no_cuda("allocating CUDA memory"); }
std::shared_ptr<void> allocate_async(size_t, int, void*) { no_cuda("allocating CUDA memory"); }
void record_stream_use(const std::shared_ptr<void>&, void*) {}
PoolStats pool_stats(int) { no_cuda("CUDA memory statistics"); }
void memset_zero(void*, size_t, int, void*) { no_cuda("memset on a CUDA tensor"); }
void memcpy(void*, const void*, size_t, int, int, void*) { no_cuda("copying a CUDA tensor"); }
void stream_wait(int, void*, void*) { no_cuda("ordering CUDA streams"); }
void synchronize_stream(int, void*) {}
bool stream_done(int, void*) { return true; }
void set_device(int) { no_cuda("selecting a CUDA device"); }
int device_count() { return 0; }
MemoryInfo memory_info(int) { no_cuda("querying CUDA memory"); }
std::string runtime_version() { return ""; }
void synchronize(int) {}

std::shared_ptr<void> new_stream(int) { no_cuda("creating a CUDA stream"); }
void begin_capture(int, void*) { no_cuda("capturing a CUDA graph"); }
std::shared_ptr<void> end_capture(int, void*) { no_cuda("capturing a CUDA graph"); }
void abort_capture(int, void*) noexcept {}
void launch_graph(const std::shared_ptr<void>&, int, void*) { no_cuda("launching a CUDA graph"); }
GraphMemory graph_memory(int) { return {}; }
void trim_graph_memory(int) {}
std::shared_ptr<void> allocate_pinned(size_t) { no_cuda("allocating pinned host memory"); }
std::shared_ptr<void> new_event(int) { no_cuda("creating a CUDA event"); }
void record_event(const std::shared_ptr<void>&, int, void*) { no_cuda("recording a CUDA event"); }
void wait_event(const std::shared_ptr<void>&, int) {}

}  // namespace llama4::cuda
#endif
