// Op entries of the vision encoder ops (layer_norm, gelu, add_bias, rope_table, attention_dense,
// pixel_shuffle, patchify): validation, then device dispatch (cpu/vision_ops.h, cpu/dense_attention.h,
// cuda/vision_ops.h).
#include <cmath>

#include "cpu/dense_attention.h"
#include "cpu/vision_ops.h"
#include "cuda/vision_ops.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

namespace {
void check_out_like(const char* op, const Context& ctx, const TensorView& out,
                    const TensorView& x) {
  detail::check_same_dtype(op, "out", out, "x", x);
  detail::check_same_device(op, "out", out, "x", x);
  detail::check_context(op, ctx, "x", x);
  detail::check_shape(op, "out", out, x.sizes());
  detail::check_contiguous_out(op, "out", out);
}
}  // namespace

void layer_norm(const Context& ctx, const TensorView& out, const TensorView& x,
                const TensorView& weight, const TensorView& bias, float eps) {
  constexpr const char* op = "layer_norm";
  detail::check_activation(op, "x", x);
  LLAMA4_CHECK_ARG(x.ndim >= 1, op, ": 'x' must have at least 1 dimension");
  check_out_like(op, ctx, out, x);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"weight", &weight}, {"bias", &bias}}) {
    detail::check_same_dtype(op, name, *t, "x", x);
    detail::check_same_device(op, name, *t, "x", x);
    detail::check_shape(op, name, *t, {x.size(-1)});
  }
  LLAMA4_CHECK_ARG(eps >= 0.f, op, ": 'eps' must be >= 0, got ", eps);
  if (x.numel() == 0) return;
  const detail::ContiguousInput xc(ctx, x), wc(ctx, weight), bc(ctx, bias);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::layer_norm(out, xc, wc, bc, eps); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::layer_norm(ctx, out, xc, wc, bc, eps)); break;
  }
}

void gelu(const Context& ctx, const TensorView& out, const TensorView& x) {
  constexpr const char* op = "gelu";
  detail::check_activation(op, "x", x);
  check_out_like(op, ctx, out, x);
  if (x.numel() == 0) return;
  const detail::ContiguousInput xc(ctx, x);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::gelu(out, xc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::gelu(ctx, out, xc)); break;
  }
}

void add_bias(const Context& ctx, const TensorView& out, const TensorView& x,
              const TensorView& bias) {
  constexpr const char* op = "add_bias";
  detail::check_activation(op, "out", out);
  LLAMA4_CHECK_ARG(out.ndim >= 1, op, ": 'out' must have at least 1 dimension");
  detail::check_dtype_in(op, "x", x, {out.dtype, DType::F32});
  detail::check_shape(op, "x", x, out.sizes());
  detail::check_same_dtype(op, "bias", bias, "out", out);
  detail::check_shape(op, "bias", bias, {out.size(-1)});
  detail::check_contiguous_out(op, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
  detail::check_same_device(op, "bias", bias, "out", out);
  detail::check_context(op, ctx, "out", out);
  if (out.numel() == 0) return;
  const detail::ContiguousInput xc(ctx, x), bc(ctx, bias);
  switch (out.device.type) {
    case DeviceType::CPU: cpu::add_bias(out, xc, bc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::add_bias(ctx, out, xc, bc)); break;
  }
}

void rope_table(const Context& ctx, const TensorView& out, const TensorView& x,
                const TensorView& cos, const TensorView& sin) {
  constexpr const char* op = "rope_table";
  detail::check_activation(op, "x", x);
  detail::check_ndim(op, "x", x, 4);
  LLAMA4_CHECK_ARG(x.size(3) % 2 == 0, op, ": head_dim (last dimension of 'x') must be even, got ",
                   x.size(3));
  check_out_like(op, ctx, out, x);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"cos", &cos}, {"sin", &sin}}) {
    detail::check_dtype(op, name, *t, DType::F32);
    detail::check_shape(op, name, *t, {x.size(1), x.size(3) / 2});
    detail::check_same_device(op, name, *t, "x", x);
  }
  if (x.numel() == 0) return;
  const detail::LastDimContiguousInput xc(ctx, x);
  const detail::ContiguousInput cc(ctx, cos), sc(ctx, sin);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::rope_table(out, xc, cc, sc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::rope_table(ctx, out, xc, cc, sc)); break;
  }
}

void attention_dense(const Context& ctx, const TensorView& out, const TensorView& q,
                     const TensorView& k, const TensorView& v, float scale) {
  constexpr const char* op = "attention_dense";
  detail::check_activation(op, "q", q);
  detail::check_ndim(op, "q", q, 4);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"k", &k}, {"v", &v}}) {
    detail::check_same_dtype(op, name, *t, "q", q);
    detail::check_same_device(op, name, *t, "q", q);
    detail::check_shape(op, name, *t, q.sizes());
  }
  detail::check_same_dtype(op, "out", out, "q", q);
  detail::check_same_device(op, "out", out, "q", q);
  detail::check_context(op, ctx, "q", q);
  detail::check_shape(op, "out", out, q.sizes());
  detail::check_contiguous_out(op, "out", out);
  LLAMA4_CHECK_ARG(std::isfinite(scale), op, ": 'scale' must be finite, got ", scale);
  if (q.numel() == 0) return;
  switch (q.device.type) {
    case DeviceType::CPU: cpu::attention_dense(out, q, k, v, scale); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::attention_dense(ctx, out, q, k, v, scale)); break;
  }
}

void pixel_shuffle(const Context& ctx, const TensorView& out, const TensorView& x, int64_t factor) {
  constexpr const char* op = "pixel_shuffle";
  detail::check_activation(op, "x", x);
  detail::check_ndim(op, "x", x, 3);
  LLAMA4_CHECK_ARG(factor >= 1, op, ": 'factor' must be >= 1, got ", factor);
  const int64_t S = int64_t(std::llround(std::sqrt(double(x.size(1)))));
  LLAMA4_CHECK_ARG(S * S == x.size(1), op, ": 'x' must hold a square grid of tokens, got ",
                   x.size(1), " tokens (shape ", x.shape_str(), ")");
  LLAMA4_CHECK_ARG(S % factor == 0, op, ": the ", S, "x", S, " token grid is not divisible by factor ",
                   factor);
  const int64_t So = S / factor;
  detail::check_same_dtype(op, "out", out, "x", x);
  detail::check_same_device(op, "out", out, "x", x);
  detail::check_context(op, ctx, "x", x);
  detail::check_shape(op, "out", out, {x.size(0), So * So, x.size(2) * factor * factor});
  detail::check_contiguous_out(op, "out", out);
  if (out.numel() == 0) return;
  const detail::LastDimContiguousInput xc(ctx, x);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::pixel_shuffle(out, xc, factor); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::pixel_shuffle(ctx, out, xc, factor)); break;
  }
}

void patchify(const Context& ctx, const TensorView& out, const TensorView& pixels, int64_t patch) {
  constexpr const char* op = "patchify";
  detail::check_activation(op, "pixels", pixels);
  detail::check_ndim(op, "pixels", pixels, 4);
  LLAMA4_CHECK_ARG(patch >= 1, op, ": 'patch' must be >= 1, got ", patch);
  LLAMA4_CHECK_ARG(pixels.size(2) % patch == 0 && pixels.size(3) % patch == 0, op,
                   ": 'pixels' height and width must be multiples of the patch size ", patch,
                   ", got shape ", pixels.shape_str());
  detail::check_activation(op, "out", out);
  detail::check_same_device(op, "out", out, "pixels", pixels);
  detail::check_context(op, ctx, "pixels", pixels);
  const int64_t n = (pixels.size(2) / patch) * (pixels.size(3) / patch);
  detail::check_shape(op, "out", out, {pixels.size(0), n, pixels.size(1) * patch * patch});
  detail::check_contiguous_out(op, "out", out);
  if (out.numel() == 0) return;
  switch (pixels.device.type) {
    case DeviceType::CPU: cpu::patchify(out, pixels, patch); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::patchify(ctx, out, pixels, patch)); break;
  }
}

}  // namespace llama4::ops
