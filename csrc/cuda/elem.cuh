// Device-side element access for the CUDA kernels: load an element as float and store a float as
// an element, through llama4/numeric.h so the roundings are bit-identical to the CPU kernels
// (cpu/elem.h); aligned small vectors for wide loads; and the activation-dtype dispatch switch.
#pragma once
#include <cstdint>

#include "llama4/dtype.h"
#include "llama4/error.h"
#include "llama4/numeric.h"

namespace llama4::cuda {

template <typename T> struct DevElem;
template <> struct DevElem<float> {
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
  static __device__ __forceinline__ float round(float v) { return v; }
};
template <> struct DevElem<bf16> {
  static __device__ __forceinline__ float load(bf16 v) { return bf16_to_f32(v.bits); }
  static __device__ __forceinline__ bf16 store(float v) { return bf16{f32_to_bf16(v)}; }
  static __device__ __forceinline__ float round(float v) { return round_bf16(v); }
};
template <> struct DevElem<f16> {
  static __device__ __forceinline__ float load(f16 v) { return f16_to_f32(v.bits); }
  static __device__ __forceinline__ f16 store(float v) { return f16{f32_to_f16(v)}; }
  static __device__ __forceinline__ float round(float v) { return f16_to_f32(f32_to_f16(v)); }
};
template <> struct DevElem<fp8e4m3> {
  static __device__ __forceinline__ float load(fp8e4m3 v) { return fp8e4m3_to_f32(v.bits); }
  static __device__ __forceinline__ fp8e4m3 store(float v) { return fp8e4m3{f32_to_fp8e4m3(v)}; }
  static __device__ __forceinline__ float round(float v) {
    return fp8e4m3_to_f32(f32_to_fp8e4m3(v));
  }
};

// N consecutive elements, aligned to their total size so one load/store instruction moves them
// (16 bytes = one 128-bit access). Only dereference at addresses aligned to sizeof(Vec).
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

template <int N, typename T>
__device__ __forceinline__ Vec<T, N> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T, N>*>(p);
}
template <int N, typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, N>& v) {
  *reinterpret_cast<Vec<T, N>*>(p) = v;
}

// Elements per 16-byte vector of T.
template <typename T>
constexpr int kVec16 = int(16 / sizeof(T));

}  // namespace llama4::cuda

// Calls FN<T>(args...) with T the C++ type of an activation dtype (f32/bf16/f16), like
// LLAMA4_DISPATCH_ACT in cpu/elem.h.
#define LLAMA4_CUDA_DISPATCH_ACT(dtype, OPNAME, FN, ...)                                          \
  do {                                                                                            \
    switch (dtype) {                                                                              \
      case ::llama4::DType::F32: FN<float>(__VA_ARGS__); break;                                   \
      case ::llama4::DType::BF16: FN<::llama4::bf16>(__VA_ARGS__); break;                         \
      case ::llama4::DType::F16: FN<::llama4::f16>(__VA_ARGS__); break;                           \
      default:                                                                                    \
        throw ::llama4::TypeError(::llama4::detail::concat(OPNAME, ": unsupported dtype ",        \
                                                           ::llama4::dtype_name(dtype)));         \
    }                                                                                             \
  } while (0)
