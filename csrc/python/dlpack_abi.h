// The DLPack C ABI (DLManagedTensor in "dltensor" capsules, and DLPack 1.x's
// DLManagedTensorVersioned in "dltensor_versioned" ones), declared from the DLPack specification:
// only the structs and codes this bridge uses.
#pragma once
#include <cstdint>

namespace llama4::dlpack {

enum DeviceCode : int32_t { kCPU = 1, kCUDA = 2, kCUDAHost = 3 };
enum TypeCode : uint8_t {
  kInt = 0, kUInt = 1, kFloat = 2, kBfloat = 4, kComplex = 5, kBool = 6, kFloat8_e4m3fn = 10
};

struct Device {
  int32_t device_type;
  int32_t device_id;
};
struct DataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  Device device;
  int32_t ndim;
  DataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; nullptr means compact row-major
  uint64_t byte_offset;
};
struct ManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(ManagedTensor* self);
};
// DLPack 1.x (DLManagedTensorVersioned), exchanged in "dltensor_versioned" capsules.
struct PackVersion {
  uint32_t major;
  uint32_t minor;
};
struct ManagedTensorVersioned {
  PackVersion version;
  void* manager_ctx;
  void (*deleter)(ManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
};
constexpr uint32_t kMajorVersion = 1;
constexpr uint64_t kFlagReadOnly = 1ull << 0;

constexpr const char* kCapsuleName = "dltensor";
constexpr const char* kVersionedCapsuleName = "dltensor_versioned";

}  // namespace llama4::dlpack
