// AVX-512 helpers shared by the CPU kernels that take the AVX512-BF16 path (checked at run time
// with has_avx512_bf16(); the rest of the library is compiled for AVX2). Functions that use these
// intrinsics carry LLAMA4_AVX512, so the compiler may emit AVX-512 in them and only in them.
#pragma once
// GCC 12's _mm512_reduce_* read an intentionally undefined register (header bug 105593); the
// warning would fire in every file that reduces (this stays in effect for the including file).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#define LLAMA4_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace llama4::cpu::avx512 {

// The low n bits set (n <= 16 / 32 / 64).
inline __mmask16 mask16(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
inline __mmask32 mask32(int64_t n) { return n >= 32 ? ~__mmask32(0) : __mmask32((1u << n) - 1); }

// Two bf16 at p (a K pair) as the dword vdpbf16ps takes: p[0] in the low half.
inline uint32_t load_pair(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 16 fp32 -> 16 bf16 with f32_to_bf16's arithmetic (nearest even; NaN -> 0x7FC0).
LLAMA4_AVX512 inline __m256i to_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                                 _mm512_set1_epi32(0x7F800000));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
}

}  // namespace llama4::cpu::avx512
