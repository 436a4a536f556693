// Host memory for the CPU context's temporaries (Context::empty on the CPU): blocks of 1 MiB and
// more are kept when freed and handed out again for the same rounded size. A step allocates the
// same activations layer after layer; from glibc each large block is a fresh mmap whose first
// touch page-faults and zero-fills it (about a tenth of the vision tower's time), from here it is
// memory the previous layer already touched. At most kHostPoolCacheBytes are kept idle.
#pragma once
#include <cstddef>
#include <memory>

namespace llama4::detail {

constexpr size_t kHostPoolMinBytes = size_t(1) << 20;
constexpr size_t kHostPoolCacheBytes = size_t(1) << 30;

// 64-byte aligned; the memory returns to the pool when the last owner drops it.
std::shared_ptr<void> host_pool_allocate(size_t nbytes);

}  // namespace llama4::detail
