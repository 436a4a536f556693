// Op entries for copies and dtype casts.
#include "cpu/memory.h"
#include "cpu/quant.h"
#include "cuda/memory.h"
#include "cuda/quant.h"
#include "cuda/runtime.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

namespace {
// A copy runs in the context of its GPU side (the CPU context when both sides are on the host).
void check_copy_context(const char* op, const Context& ctx, const TensorView& dst,
                        const TensorView& src) {
  const Device& side = src.device.is_cuda() ? src.device : dst.device;
  LLAMA4_CHECK_TYPE(side == ctx.device(), op, ": a copy from ", src.device.str(), " to ", dst.device.str(),
                    " runs in a context on ", side.str(), ", got one on ", ctx.device().str());
}
}  // namespace

void copy(const Context& ctx, const TensorView& dst, const TensorView& src) {
  detail::check_same_dtype("copy", "dst", dst, "src", src);
  detail::check_shape("copy", "dst", dst, src.sizes());
  check_copy_context("copy", ctx, dst, src);
  if (src.numel() == 0) return;
  if (dst.device != src.device) {
    LLAMA4_CHECK_ARG(dst.is_contiguous() && src.is_contiguous(),
                     "copy: copies between devices need contiguous tensors");
    LLAMA4_CHECK_ARG(dst.device.is_cpu() || src.device.is_cpu(),
                     "copy: copies between two GPUs are not supported (", src.device.str(), " to ",
                     dst.device.str(), ")");
    const int kind = src.device.is_cpu() ? 0 : 1;
    cuda::memcpy(dst.data, src.data, src.nbytes(), kind, ctx.device().index, ctx.stream());
    return;
  }
  switch (src.device.type) {
    case DeviceType::CPU: cpu::copy_strided(dst, src); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::copy_strided(ctx, dst, src)); break;
  }
}

void cast(const Context& ctx, const TensorView& dst, const TensorView& src) {
  const auto floats = {DType::F32, DType::BF16, DType::F16, DType::F8E4M3};
  detail::check_dtype_in("cast", "dst", dst, floats);
  detail::check_dtype_in("cast", "src", src, floats);
  detail::check_same_device("cast", "dst", dst, "src", src);
  detail::check_context("cast", ctx, "src", src);
  detail::check_shape("cast", "dst", dst, src.sizes());
  detail::check_contiguous_out("cast", "dst", dst);
  const detail::ContiguousInput s(ctx, src);
  if (src.numel() == 0) return;
  switch (src.device.type) {
    case DeviceType::CPU: cpu::cast(dst, s); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::cast(ctx, dst, s)); break;
  }
}

Tensor contiguous(const Context& ctx, const TensorView& src) {
  detail::check_context("contiguous", ctx, "src", src);
  Tensor out = ctx.empty(src.sizes(), src.dtype);
  copy(ctx, out.view(), src);
  return out;
}

Tensor to_device(const Context& ctx, const TensorView& src, Device device) {
  check_copy_context("to_device", ctx, TensorView(nullptr, src.dtype, src.sizes(), device), src);
  if (!src.is_contiguous()) {
    // Made contiguous where it is: on the host, or on the GPU in ctx.
    const Tensor c = src.device.is_cpu() ? contiguous(Context::cpu(), src) : contiguous(ctx, src);
    return to_device(ctx, c.view(), device);
  }
  // GPU memory from ctx's pool; host memory plain (a device->host copy waits for the data).
  Tensor out = device.is_cuda() ? ctx.empty(src.sizes(), src.dtype)
                                : Tensor::empty(src.sizes(), src.dtype, device);
  copy(ctx, out.view(), src);
  return out;
}

}  // namespace llama4::ops
