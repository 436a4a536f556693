// Roofline probes for the CPU: what this machine's memory and bf16 units can do, measured with
// the kernels' own thread pool (OpenMP), so benchmarks can print each kernel's fraction of it.
//   cpu_read_probe      reads a buffer once with AVX-512 loads, every thread its own contiguous
//                       slice (the access pattern of the weight-streaming kernels); time it over
//                       a buffer far larger than the last-level cache to get the read bandwidth.
//   cpu_bf16_peak_probe runs a register-only loop of independent vdpbf16ps on every thread: the
//                       bf16 dot-product peak (2 flops per bf16 pair multiply-add).
// Both need AVX512-BF16 (cpu_has_avx512_bf16()); otherwise they throw llama4::Error.
#pragma once
#include <cstdint>

namespace llama4 {

// True when this CPU executes AVX512-BF16 (and LLAMA4_NO_AVX512_BF16 is unset).
bool cpu_has_avx512_bf16();
// Reads bytes of data (any alignment; bytes a multiple of 64 are read whole, the rest with a mask)
// on the OpenMP threads. Returns a checksum of the data so the compiler cannot drop the loads.
uint64_t cpu_read_probe(const void* data, int64_t bytes);
// Every OpenMP thread executes `iterations` x 24 independent 512-bit vdpbf16ps. Returns the
// flops done (threads x iterations x 24 x 64), for the caller to divide by its wall time.
double cpu_bf16_peak_probe(int64_t iterations);

}  // namespace llama4
