// The CUDA runtime wrapper for builds without the CUDA backend: every call reports it clearly.
#include "llama4/error.h"
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

}  // namespace llama4::cuda
#endif
