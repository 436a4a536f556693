// Element load/store in float for the CPU kernels, and a dtype switch over activation types.
#pragma once
#include "llama4/dtype.h"
#include "llama4/error.h"
#include "llama4/numeric.h"

namespace llama4::cpu {

template <typename T> struct Elem;
template <> struct Elem<float> {
  static float load(const float* p, int64_t i) { return p[i]; }
  static void store(float* p, int64_t i, float v) { p[i] = v; }
  // Round to this type, kept in float (identity for float).
  static float round(float v) { return v; }
};
template <> struct Elem<bf16> {
  static float load(const bf16* p, int64_t i) { return bf16_to_f32(p[i].bits); }
  static void store(bf16* p, int64_t i, float v) { p[i].bits = f32_to_bf16(v); }
  static float round(float v) { return round_bf16(v); }
};
template <> struct Elem<f16> {
  static float load(const f16* p, int64_t i) { return f16_to_f32(p[i].bits); }
  static void store(f16* p, int64_t i, float v) { p[i].bits = f32_to_f16(v); }
  static float round(float v) { return f16_to_f32(f32_to_f16(v)); }
};

}  // namespace llama4::cpu

// Calls FN<T>(args...) with T the C++ type of an activation dtype (f32/bf16/f16).
// (A template, not a lambda: OpenMP pragmas cannot sit inside macro arguments.)
#define LLAMA4_DISPATCH_ACT(dtype, OPNAME, FN, ...)                                              \
  do {                                                                                           \
    switch (dtype) {                                                                             \
      case ::llama4::DType::F32: FN<float>(__VA_ARGS__); break;                                  \
      case ::llama4::DType::BF16: FN<::llama4::bf16>(__VA_ARGS__); break;                        \
      case ::llama4::DType::F16: FN<::llama4::f16>(__VA_ARGS__); break;                          \
      default:                                                                                   \
        throw ::llama4::TypeError(                                                               \
            ::llama4::detail::concat(OPNAME, ": unsupported dtype ", ::llama4::dtype_name(dtype))); \
    }                                                                                            \
  } while (0)
