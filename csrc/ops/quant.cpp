// Op entries for FP8 e4m3 row-wise quantize / dequantize.
#include <cmath>

#include "cpu/quant.h"
#include "cuda/quant.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

void quantize_fp8_rowwise(const Context& ctx, const TensorView& q_out, const TensorView& scale_out,
                          const TensorView& x, float scale_ub) {
  constexpr const char* op = "quantize_fp8_rowwise";
  detail::check_activation(op, "x", x);
  detail::check_ndim(op, "x", x, 2);
  detail::check_dtype(op, "q_out", q_out, DType::F8E4M3);
  detail::check_shape(op, "q_out", q_out, x.sizes());
  detail::check_dtype(op, "scale_out", scale_out, DType::F32);
  detail::check_shape(op, "scale_out", scale_out, {x.size(0)});
  detail::check_same_device(op, "q_out", q_out, "x", x);
  detail::check_same_device(op, "scale_out", scale_out, "x", x);
  detail::check_context(op, ctx, "x", x);
  detail::check_contiguous_out(op, "q_out", q_out);
  detail::check_contiguous_out(op, "scale_out", scale_out);
  LLAMA4_CHECK_ARG(std::isfinite(scale_ub) && scale_ub >= 0.f, op,
                   ": 'scale_ub' must be finite and >= 0 (0: no bound), got ", scale_ub);
  if (x.numel() == 0 && x.size(0) == 0) return;
  const detail::ContiguousInput xc(ctx, x);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::quantize_fp8_rowwise(q_out, scale_out, xc, scale_ub); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::quantize_fp8_rowwise(ctx, q_out, scale_out, xc, scale_ub)); break;
  }
}

void dequantize_fp8_rowwise(const Context& ctx, const TensorView& out, const TensorView& q,
                            const TensorView& scale) {
  constexpr const char* op = "dequantize_fp8_rowwise";
  detail::check_dtype(op, "q", q, DType::F8E4M3);
  detail::check_ndim(op, "q", q, 2);
  detail::check_dtype(op, "scale", scale, DType::F32);
  detail::check_shape(op, "scale", scale, {q.size(0)});
  detail::check_activation(op, "out", out);
  detail::check_shape(op, "out", out, q.sizes());
  detail::check_same_device(op, "scale", scale, "q", q);
  detail::check_same_device(op, "out", out, "q", q);
  detail::check_context(op, ctx, "q", q);
  detail::check_contiguous_out(op, "out", out);
  if (q.numel() == 0) return;
  const detail::ContiguousInput qc(ctx, q), sc(ctx, scale);
  switch (q.device.type) {
    case DeviceType::CPU: cpu::dequantize_fp8_rowwise(out, qc, sc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::dequantize_fp8_rowwise(ctx, out, qc, sc)); break;
  }
}

}  // namespace llama4::ops
