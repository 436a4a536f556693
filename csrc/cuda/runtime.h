// Host-side entry points of the CUDA runtime wrapper (plain C++: no CUDA headers here).
// Without the CUDA backend, cuda_unavailable.cpp defines them to report that CUDA is absent.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace llama4::cuda {

std::shared_ptr<void> allocate(size_t nbytes, int device);
void memset_zero(void* ptr, size_t nbytes, int device);
// kind: 0 host->device, 1 device->host, 2 device->device. Synchronous for the host buffer
// (cudaMemcpy); device->device is ordered on the default stream like the kernels.
void memcpy(void* dst, const void* src, size_t nbytes, int kind, int device);
int device_count();          // 0 on any error (no driver, no device); never throws
std::string runtime_version();  // "13.0"
void synchronize(int device);

}  // namespace llama4::cuda
