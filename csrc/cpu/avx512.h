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

#define LLAMA4_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace llama4::cpu::avx512 {

// The low n bits set (n <= 16 / 32 / 64).
inline __mmask16 mask16(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
inline __mmask32 mask32(int64_t n) { return n >= 32 ? ~__mmask32(0) : __mmask32((1u << n) - 1); }

}  // namespace llama4::cpu::avx512
