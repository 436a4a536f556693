// TensorView: a non-owning view {data, dtype, device, shape, strides} (strides in elements), the
// currency of every op. Tensor: an owning buffer with a view, for outputs and scratch memory.
// Neither depends on torch or pybind11; Python objects cross as DLPack views (csrc/python/).
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "llama4/dtype.h"

namespace llama4 {

// Values equal DLPack's device codes (kDLCPU = 1, kDLCUDA = 2).
enum class DeviceType : int32_t { CPU = 1, CUDA = 2 };

struct Device {
  DeviceType type = DeviceType::CPU;
  int32_t index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;  // "cpu" or "cuda:0"
  static Device cpu() { return {}; }
  static Device cuda(int32_t index = 0) { return {DeviceType::CUDA, index}; }
};

constexpr int kMaxDims = 6;
using Shape = std::vector<int64_t>;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device;
  int32_t ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> strides{};  // in elements

  TensorView() = default;
  // A contiguous (row-major) view.
  TensorView(void* data, DType dtype, const Shape& shape, Device device = Device::cpu());
  TensorView(void* data, DType dtype, const Shape& shape, const Shape& strides, Device device);

  int64_t size(int dim) const { return shape[normalize_dim(dim)]; }
  int64_t stride(int dim) const { return strides[normalize_dim(dim)]; }
  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * element_size(dtype); }
  bool is_contiguous() const;
  Shape sizes() const { return Shape(shape.begin(), shape.begin() + ndim); }
  std::string shape_str() const;  // "[3, 4]"
  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }

  // Same memory, new shape; the view must be contiguous.
  TensorView reshape(const Shape& new_shape) const;
  // Rows [begin, end) of dimension 0.
  TensorView slice0(int64_t begin, int64_t end) const;
  // Index dimension 0 away.
  TensorView select0(int64_t index) const;

 private:
  int normalize_dim(int dim) const;
};

// Owning tensor: a buffer allocated on a device, shared by copies of the Tensor.
class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // A tensor over memory someone else allocated (e.g. Context::empty's pool): `layout` gives the
  // dtype, shape and device; its data pointer is replaced by storage's.
  static Tensor adopt(std::shared_ptr<void> storage, const TensorView& layout);
  // A view of memory that `owner` keeps alive (e.g. a memory-mapped file): copies of the Tensor
  // share the owner, which is released with the last of them.
  static Tensor wrap(const TensorView& view, std::shared_ptr<void> owner);

  const TensorView& view() const { return view_; }
  operator const TensorView&() const { return view_; }
  bool defined() const { return storage_ != nullptr || view_.numel() == 0; }
  void* data() const { return view_.data; }
  template <typename T>
  T* ptr() const { return view_.ptr<T>(); }
  int64_t numel() const { return view_.numel(); }
  int64_t size(int dim) const { return view_.size(dim); }
  DType dtype() const { return view_.dtype; }
  Device device() const { return view_.device; }
  const std::shared_ptr<void>& storage() const { return storage_; }

 private:
  std::shared_ptr<void> storage_;
  TensorView view_;
};

// Raw long-lived device memory (CPU: 64-byte aligned host memory; CUDA: cudaMalloc, whose free
// synchronises the device). Temporaries of a step come from Context::empty instead.
std::shared_ptr<void> allocate(size_t nbytes, Device device);
// Zero-fills a contiguous tensor and returns when it is done (CUDA: waits for the memset).
void memset_zero(const TensorView& t);

}  // namespace llama4
