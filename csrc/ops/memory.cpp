// Op entries for copies and dtype casts.
#include "cpu/memory.h"
#include "cpu/quant.h"
#include "cuda/memory.h"
#include "cuda/quant.h"
#include "cuda/runtime.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

void copy(const TensorView& dst, const TensorView& src) {
  detail::check_same_dtype("copy", "dst", dst, "src", src);
  detail::check_shape("copy", "dst", dst, src.sizes());
  if (src.numel() == 0) return;
  if (dst.device != src.device) {
    LLAMA4_CHECK_ARG(dst.is_contiguous() && src.is_contiguous(),
                     "copy: copies between devices need contiguous tensors");
    const int kind = src.device.is_cpu() ? 0 : (dst.device.is_cpu() ? 1 : 2);
    const int dev = src.device.is_cuda() ? src.device.index : dst.device.index;
    cuda::memcpy(dst.data, src.data, src.nbytes(), kind, dev);
    return;
  }
  switch (src.device.type) {
    case DeviceType::CPU: cpu::copy_strided(dst, src); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::copy_strided(dst, src)); break;
  }
}

void cast(const TensorView& dst, const TensorView& src) {
  const auto floats = {DType::F32, DType::BF16, DType::F16, DType::F8E4M3};
  detail::check_dtype_in("cast", "dst", dst, floats);
  detail::check_dtype_in("cast", "src", src, floats);
  detail::check_same_device("cast", "dst", dst, "src", src);
  detail::check_shape("cast", "dst", dst, src.sizes());
  detail::check_contiguous_out("cast", "dst", dst);
  const detail::ContiguousInput s(src);
  if (src.numel() == 0) return;
  switch (src.device.type) {
    case DeviceType::CPU: cpu::cast(dst, s); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::cast(dst, s)); break;
  }
}

Tensor contiguous(const TensorView& src) {
  Tensor out = Tensor::empty(src.sizes(), src.dtype, src.device);
  copy(out.view(), src);
  return out;
}

Tensor to_device(const TensorView& src, Device device) {
  if (!src.is_contiguous()) return to_device(contiguous(src).view(), device);
  Tensor out = Tensor::empty(src.sizes(), src.dtype, device);
  copy(out.view(), src);
  return out;
}

}  // namespace llama4::ops
