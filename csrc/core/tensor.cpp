// TensorView helpers and device memory allocation.
#include "llama4/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "cuda/runtime.h"
#include "llama4/error.h"

namespace llama4 {

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

static void fill_contiguous_strides(TensorView& v) {
  int64_t s = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    v.strides[d] = s;
    s *= v.shape[d];
  }
}

TensorView::TensorView(void* data_, DType dtype_, const Shape& shape_, Device device_)
    : data(data_), dtype(dtype_), device(device_), ndim(int32_t(shape_.size())) {
  LLAMA4_CHECK_ARG(shape_.size() <= size_t(kMaxDims), "tensors have at most ", kMaxDims,
                   " dimensions, got ", shape_.size());
  for (int d = 0; d < ndim; ++d) {
    LLAMA4_CHECK_ARG(shape_[d] >= 0, "negative size ", shape_[d], " in dimension ", d);
    shape[d] = shape_[d];
  }
  fill_contiguous_strides(*this);
}

TensorView::TensorView(void* data_, DType dtype_, const Shape& shape_, const Shape& strides_,
                       Device device_)
    : TensorView(data_, dtype_, shape_, device_) {
  LLAMA4_CHECK_ARG(strides_.size() == shape_.size(), "got ", strides_.size(), " strides for ",
                   shape_.size(), " dimensions");
  for (int d = 0; d < ndim; ++d) strides[d] = strides_[d];
}

int TensorView::normalize_dim(int dim) const {
  const int d = dim < 0 ? dim + ndim : dim;
  LLAMA4_CHECK_ARG(d >= 0 && d < ndim, "dimension ", dim, " out of range for a ", ndim,
                   "-d tensor");
  return d;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

bool TensorView::is_contiguous() const {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != s) return false;
    s *= shape[d];
  }
  return true;
}

std::string TensorView::shape_str() const {
  std::ostringstream os;
  os << "[";
  for (int d = 0; d < ndim; ++d) os << (d ? ", " : "") << shape[d];
  os << "]";
  return os.str();
}

TensorView TensorView::reshape(const Shape& new_shape) const {
  LLAMA4_CHECK_ARG(is_contiguous(), "reshape needs a contiguous tensor, got shape ", shape_str());
  TensorView v(data, dtype, new_shape, device);
  LLAMA4_CHECK_ARG(v.numel() == numel(), "cannot reshape ", shape_str(), " to ", v.shape_str());
  return v;
}

TensorView TensorView::slice0(int64_t begin, int64_t end) const {
  LLAMA4_CHECK_ARG(ndim >= 1 && 0 <= begin && begin <= end && end <= shape[0], "slice [", begin,
                   ", ", end, ") out of range for dimension 0 of ", shape_str());
  TensorView v = *this;
  v.shape[0] = end - begin;
  v.data = static_cast<char*>(data) + begin * strides[0] * int64_t(element_size(dtype));
  return v;
}

TensorView TensorView::select0(int64_t index) const {
  LLAMA4_CHECK_ARG(ndim >= 1 && 0 <= index && index < shape[0], "index ", index,
                   " out of range for dimension 0 of ", shape_str());
  TensorView v = *this;
  v.data = static_cast<char*>(data) + index * strides[0] * int64_t(element_size(dtype));
  for (int d = 1; d < ndim; ++d) {
    v.shape[d - 1] = shape[d];
    v.strides[d - 1] = strides[d];
  }
  v.ndim = ndim - 1;
  return v;
}

std::shared_ptr<void> allocate(size_t nbytes, Device device) {
  if (device.is_cuda()) return cuda::allocate(nbytes, device.index);
  const size_t rounded = (nbytes + 63) / 64 * 64;
  void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
  LLAMA4_CHECK(p != nullptr || rounded == 0, "out of host memory allocating ", nbytes, " bytes");
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.view_ = TensorView(nullptr, dtype, shape, device);
  t.storage_ = allocate(t.view_.nbytes(), device);
  t.view_.data = t.storage_.get();
  return t;
}

Tensor Tensor::adopt(std::shared_ptr<void> storage, const TensorView& layout) {
  Tensor t;
  t.view_ = layout;
  t.storage_ = std::move(storage);
  t.view_.data = t.storage_.get();
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  memset_zero(t.view());
  return t;
}

Tensor Tensor::wrap(const TensorView& view, std::shared_ptr<void> owner) {
  LLAMA4_CHECK_ARG(owner != nullptr || view.numel() == 0, "Tensor::wrap needs an owner for a non-empty view");
  Tensor t;
  t.view_ = view;
  t.storage_ = std::move(owner);
  return t;
}

void memset_zero(const TensorView& t) {
  LLAMA4_CHECK_ARG(t.is_contiguous(), "memset_zero needs a contiguous tensor");
  if (t.nbytes() == 0) return;
  if (t.device.is_cuda()) {
    // On the per-thread default stream, then waited for: the tensor is zero when this returns,
    // whichever stream uses it next.
    void* stream = reinterpret_cast<void*>(uintptr_t(2));  // cudaStreamPerThread
    cuda::memset_zero(t.data, t.nbytes(), t.device.index, stream);
    cuda::synchronize_stream(t.device.index, stream);
  } else {
    std::memset(t.data, 0, t.nbytes());
  }
}

}  // namespace llama4
