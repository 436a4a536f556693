// Eight floats at a time (AVX2 + FMA, the CPU kernels' baseline) with exactly the arithmetic of the
// scalar code they replace, so a vectorized kernel gives the scalar kernel's bits, and the CUDA
// kernels (which match the scalar code) stay bit-identical to the CPU:
//   load / store   float32 and bfloat16 (bf16 widens exactly; narrows as f32_to_bf16 does:
//                  nearest even, NaN -> 0x7FC0)
//   round<T>       Elem<T>::round (to bf16 and back; identity for float)
//   exp            llama4/mathfn.h's exp_f32, step by step in double (4 lanes per half)
//   store_e4m3     f32_to_fp8e4m3 (saturating, NaN -> 0x7F) into eight bytes
//   load_e4m3      fp8e4m3_to_f32 of eight bytes (through F16C, exact)
// Kernels use these when kVec8<T> (float, bf16) and take the scalar path for f16 and for tails.
#pragma once
#include <type_traits>

#include "llama4/mathfn.h"
#include "llama4/numeric.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define LLAMA4_VEC8 1
#include <immintrin.h>
#else
#define LLAMA4_VEC8 0
#endif

namespace llama4::cpu::vec8 {

template <typename T> constexpr bool kVec8 = LLAMA4_VEC8 && (std::is_same_v<T, float> || std::is_same_v<T, bf16>);

#if LLAMA4_VEC8

inline __m256 load(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load(const bf16* p) {
  const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

// f32_to_bf16 on eight lanes, each result in the low 16 bits of its 32-bit lane.
inline __m256i to_bf16_bits(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), 16);
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF)),
                                         _mm256_set1_epi32(0x7F800000));
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
}

inline void store(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline void store(bf16* p, __m256 v) {
  const __m256i r = to_bf16_bits(v);
  const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}

template <typename T>
inline __m256 round(__m256 v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(to_bf16_bits(v), 16));
  } else {
    return v;
  }
}

// exp_f32's core on N groups of four doubles in [-110, 100]: the same reduction, polynomial and
// scaling. The N independent chains advance step by step together: the polynomial is a serial
// chain of twelve fmas, so one chain alone waits on each fma's latency.
template <int N>
inline void exp_core(__m256d (&v)[N]) {
  using namespace mathfn_detail;
  static constexpr double kTaylor[] = {0x1.ae64567f544e4p-26, 0x1.27e4fb7789f5cp-22, 0x1.71de3a556c734p-19,
                                       0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-13, 0x1.6c16c16c16c17p-10,
                                       0x1.1111111111111p-7,  0x1.5555555555555p-5,  0x1.5555555555555p-3,
                                       0.5,                   1.0,                   1.0};
  __m256d kd[N], r[N], p[N];
  for (int i = 0; i < N; ++i) {
    kd[i] = _mm256_round_pd(_mm256_mul_pd(v[i], _mm256_set1_pd(kInvLn2)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d neg_kd = _mm256_xor_pd(kd[i], _mm256_set1_pd(-0.0));
    r[i] = _mm256_fmadd_pd(neg_kd, _mm256_set1_pd(kLn2Hi), v[i]);
    r[i] = _mm256_fmadd_pd(neg_kd, _mm256_set1_pd(kLn2Lo), r[i]);
    p[i] = _mm256_set1_pd(0x1.1eed8eff8d898p-29);
  }
  for (double c : kTaylor)
    for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_pd(p[i], r[i], _mm256_set1_pd(c));
  for (int i = 0; i < N; ++i) {
    // 2^k exactly: kd + 2^52 + 1023 holds k + 1023 in its low mantissa bits (k in [-159, 145]).
    const __m256i biased = _mm256_castpd_si256(_mm256_add_pd(kd[i], _mm256_set1_pd(0x1p52 + 1023.0)));
    v[i] = _mm256_mul_pd(p[i], _mm256_castsi256_pd(_mm256_slli_epi64(biased, 52)));
  }
}

// exp_f32 on N vectors of eight lanes, bit for bit (NaN -> 0x7FC00000, x > 100 -> +inf,
// x < -110 -> 0), in place.
template <int N>
inline void exp(__m256 (&x)[N]) {
  __m256d d[2 * N];
  for (int i = 0; i < N; ++i) {
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x[i], _mm256_set1_ps(-110.0f)), _mm256_set1_ps(100.0f));
    d[2 * i] = _mm256_cvtps_pd(_mm256_castps256_ps128(xc));
    d[2 * i + 1] = _mm256_cvtps_pd(_mm256_extractf128_ps(xc, 1));
  }
  exp_core(d);
  for (int i = 0; i < N; ++i) {
    __m256 y = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(d[2 * i])), _mm256_cvtpd_ps(d[2 * i + 1]), 1);
    y = _mm256_blendv_ps(y, _mm256_set1_ps(f32_from_bits(0x7F800000u)),
                         _mm256_cmp_ps(x[i], _mm256_set1_ps(100.0f), _CMP_GT_OQ));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x[i], _mm256_set1_ps(-110.0f), _CMP_LT_OQ));
    x[i] = _mm256_blendv_ps(y, _mm256_set1_ps(f32_from_bits(0x7FC00000u)), _mm256_cmp_ps(x[i], x[i], _CMP_UNORD_Q));
  }
}

// f32_to_fp8e4m3 on eight lanes: the same three cases (saturate / subnormal through a float add /
// rebias and round half to even), selected per lane; the eight codes go to p[0, 8).
inline void store_e4m3(uint8_t* p, __m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i sign = _mm256_and_si256(u, _mm256_set1_epi32(int(0x80000000u)));
  const __m256i bits = _mm256_xor_si256(u, sign);  // |f|: a non-negative int32, so signed compares work
  const __m256i denorm = _mm256_set1_epi32(141 << 23);
  const __m256i sub = _mm256_sub_epi32(
      _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(bits), _mm256_castsi256_ps(denorm))), denorm);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 20), _mm256_set1_epi32(1));
  __m256i normal = _mm256_add_epi32(bits, _mm256_set1_epi32(int((uint32_t(7 - 127) << 23) + 0x7FFFFu)));
  normal = _mm256_srli_epi32(_mm256_add_epi32(normal, odd), 20);
  normal = _mm256_and_si256(normal, _mm256_set1_epi32(0xFF));
  // 464 < |x| < 480 rounds into the NaN code 0x7F: saturate to 0x7E (448)
  normal = _mm256_blendv_epi8(normal, _mm256_set1_epi32(0x7E), _mm256_cmpeq_epi32(normal, _mm256_set1_epi32(0x7F)));
  const __m256i saturated = _mm256_blendv_epi8(_mm256_set1_epi32(0x7E), _mm256_set1_epi32(0x7F),
                                               _mm256_cmpgt_epi32(bits, _mm256_set1_epi32(0x7F800000)));
  __m256i r = _mm256_blendv_epi8(normal, _mm256_and_si256(sub, _mm256_set1_epi32(0xFF)),
                                 _mm256_cmpgt_epi32(_mm256_set1_epi32(121 << 23), bits));
  r = _mm256_blendv_epi8(r, saturated, _mm256_cmpgt_epi32(bits, _mm256_set1_epi32((1087 << 20) - 1)));
  r = _mm256_or_si256(r, _mm256_srli_epi32(sign, 24));
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
}

// Eight e4m3 codes (zero-extended to 16-bit lanes) as float16 bits of the code's value times 2^-8:
// (sign << 8) | (magnitude << 7), exact for every finite code, subnormals included. The NaN codes
// (magnitude 0x7F) would read as a finite 480: `nan` gets all ones in their lanes.
inline __m128i e4m3_to_f16_scaled(__m128i codes, __m128i* nan) {
  const __m128i mag = _mm_and_si128(codes, _mm_set1_epi16(0x7F));
  *nan = _mm_cmpeq_epi16(mag, _mm_set1_epi16(0x7F));
  return _mm_or_si128(_mm_slli_epi16(_mm_and_si128(codes, _mm_set1_epi16(0x80)), 8), _mm_slli_epi16(mag, 7));
}

// fp8e4m3_to_f32 of the eight codes at p: cvtph * 256 is exact; NaN codes give its signed NaN.
inline __m256 load_e4m3(const uint8_t* p) {
  const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  __m128i nan;
  const __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(e4m3_to_f16_scaled(b, &nan)), _mm256_set1_ps(256.0f));
  const __m256i sign = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_and_si128(b, _mm_set1_epi16(0x80))), 24);
  const __m256 nan_value = _mm256_castsi256_ps(_mm256_or_si256(sign, _mm256_set1_epi32(0x7FC00000)));
  return _mm256_blendv_ps(v, nan_value, _mm256_castsi256_ps(_mm256_cvtepi16_epi32(nan)));
}

#endif  // LLAMA4_VEC8

}  // namespace llama4::cpu::vec8
