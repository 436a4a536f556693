// The roofline probes of llama4/roofline.h.
#include "llama4/roofline.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "cpu/avx512.h"
#include "cpu/gemm_bf16.h"
#include "llama4/error.h"

namespace llama4 {

bool cpu_has_avx512_bf16() { return cpu::has_avx512_bf16(); }

namespace {

// Four independent 64-byte loads per step (256 bytes), folded with xor: loads are the only
// memory traffic, and the xors take one vector slot each, far below what a core can retire.
LLAMA4_AVX512 uint64_t read_slice(const char* p, int64_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 256 <= bytes; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_loadu_si512(p + i + 192));
  }
  for (; i < bytes; i += 64) {
    const int64_t n = std::min<int64_t>(64, bytes - i);
    const __mmask64 m = n == 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1;
    a0 = _mm512_xor_si512(a0, _mm512_maskz_loadu_epi8(m, p + i));
  }
  const __m512i s = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return uint64_t(_mm512_reduce_or_epi64(s));
}

LLAMA4_AVX512 double peak_loop(int64_t iterations) {
  // 24 accumulators: enough independent chains to cover vdpbf16ps latency at full throughput.
  __m512 acc[24];
#pragma GCC unroll 24
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F803F80), b = (__m512bh)_mm512_set1_epi32(0x3F003F00);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  return double(_mm512_reduce_add_ps(s));
}

}  // namespace

uint64_t cpu_read_probe(const void* data, int64_t bytes) {
  LLAMA4_CHECK(cpu_has_avx512_bf16(), "cpu_read_probe needs AVX-512 (AVX512-BF16)");
  LLAMA4_CHECK_ARG(bytes >= 0, "cpu_read_probe: bytes must be >= 0, got ", bytes);
  const char* p = static_cast<const char*>(data);
  uint64_t sum = 0;
#pragma omp parallel reduction(^ : sum)
  {
    // Contiguous slices, 4 KiB aligned within the buffer, as the GEMV kernels split weights.
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t pages = (bytes + 4095) / 4096;
    const int64_t lo = std::min(bytes, pages * t / nt * 4096), hi = std::min(bytes, pages * (t + 1) / nt * 4096);
    sum ^= read_slice(p + lo, hi - lo);
  }
  return sum;
}

double cpu_bf16_peak_probe(int64_t iterations) {
  LLAMA4_CHECK(cpu_has_avx512_bf16(), "cpu_bf16_peak_probe needs AVX512-BF16");
  LLAMA4_CHECK_ARG(iterations >= 1, "cpu_bf16_peak_probe: iterations must be >= 1, got ", iterations);
  int threads = 1;
  double sink = 0.0;
#pragma omp parallel reduction(+ : sink)
  {
#pragma omp single
    threads = omp_get_num_threads();
    sink += peak_loop(iterations);
  }
  volatile double keep = sink;  // the sums are garbage; only their existence matters
  (void)keep;
  return double(threads) * double(iterations) * 24.0 * 64.0;
}

}  // namespace llama4
