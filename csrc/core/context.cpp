// Context (llama4/context.h): the device, the stream, and stream-ordered temporaries.
#include "llama4/context.h"

#include <cstring>

#include "core/host_pool.h"
#include "cuda/runtime.h"
#include "llama4/communicator.h"
#include "llama4/error.h"

namespace llama4 {

Context Context::cuda(int index, void* stream) {
  LLAMA4_CHECK_ARG(index >= 0, "Context: CUDA device index must be >= 0, got ", index);
  Context c;
  c.device_ = Device::cuda(index);
  c.stream_ = stream;
  return c;
}

int Context::rank() const { return comm_ ? comm_->rank() : 0; }
int Context::world_size() const { return comm_ ? comm_->size() : 1; }

Context Context::on(Device device) { return device.is_cuda() ? cuda(device.index) : cpu(); }

Tensor Context::empty(const Shape& shape, DType dtype) const {
  if (!device_.is_cuda()) {  // reused host blocks: no page faults for a step's activations
    const TensorView layout(nullptr, dtype, shape, device_);
    return Tensor::adopt(detail::host_pool_allocate(layout.nbytes()), layout);
  }
  const TensorView layout(nullptr, dtype, shape, device_);
  return Tensor::adopt(cuda::allocate_async(layout.nbytes(), device_.index, stream_), layout);
}

Tensor Context::zeros(const Shape& shape, DType dtype) const {
  Tensor t = empty(shape, dtype);
  zero(t.view());
  return t;
}

void Context::zero(const TensorView& t) const {
  LLAMA4_CHECK_ARG(t.is_contiguous(), "Context::zero needs a contiguous tensor, got shape ", t.shape_str());
  LLAMA4_CHECK_TYPE(t.device == device_, "Context::zero: the tensor is on ", t.device.str(),
                    " but the context on ", device_.str());
  if (t.nbytes() == 0) return;
  if (device_.is_cuda()) {
    cuda::memset_zero(t.data, t.nbytes(), device_.index, stream_);
  } else {
    std::memset(t.data, 0, t.nbytes());
  }
}

void Context::synchronize() const {
  if (device_.is_cuda()) cuda::synchronize_stream(device_.index, stream_);
}

}  // namespace llama4
