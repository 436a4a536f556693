// Element types the engine handles, with their sizes and names.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace llama4 {

enum class DType : uint8_t { F32, BF16, F16, F8E4M3, I32, I64, U8 };

constexpr size_t element_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::F8E4M3: return 1;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}

// Names as PyTorch spells them, so error messages read naturally from Python.
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::F8E4M3: return "float8_e4m3fn";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
  }
  return "?";
}

constexpr bool is_floating(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::F8E4M3;
}

}  // namespace llama4
