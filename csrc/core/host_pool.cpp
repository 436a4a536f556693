#include "core/host_pool.h"

#include <cstdlib>
#include <map>
#include <mutex>

#include "llama4/error.h"

namespace llama4::detail {

namespace {

// Sizes rounded up to one of eight steps per power of two (at most 12.5% slack), so a block is
// reused by requests of nearly the same size.
size_t bucket_of(size_t n) {
  size_t top = 1;
  while (top * 2 <= n) top *= 2;
  const size_t step = top / 8;
  return (n + step - 1) / step * step;
}

class HostPool {
 public:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = idle_.find(bytes);
      if (it != idle_.end()) {
        void* p = it->second;
        idle_.erase(it);
        idle_bytes_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, bytes);
    LLAMA4_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
    return p;
  }

  void give(void* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (idle_bytes_ + bytes <= kHostPoolCacheBytes) {
        idle_.emplace(bytes, p);
        idle_bytes_ += bytes;
        return;
      }
    }
    std::free(p);
  }

 private:
  std::mutex mu_;
  std::multimap<size_t, void*> idle_;  // rounded size -> free block
  size_t idle_bytes_ = 0;
};

// Never destroyed: tensors may outlive static destruction order (a leak at exit, by design).
HostPool& pool() {
  static HostPool* p = new HostPool();
  return *p;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define LLAMA4_HOST_POOL 0  // AddressSanitizer builds: every block from malloc, so ASan sees its life
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LLAMA4_HOST_POOL 0
#endif
#endif
#ifndef LLAMA4_HOST_POOL
#define LLAMA4_HOST_POOL 1
#endif

std::shared_ptr<void> host_pool_allocate(size_t nbytes) {
  if (!LLAMA4_HOST_POOL || nbytes < kHostPoolMinBytes) {
    const size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    LLAMA4_CHECK(p != nullptr || rounded == 0, "out of host memory allocating ", nbytes, " bytes");
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }
  const size_t bytes = bucket_of(nbytes);
  return std::shared_ptr<void>(pool().take(bytes), [bytes](void* q) { pool().give(q, bytes); });
}

}  // namespace llama4::detail
