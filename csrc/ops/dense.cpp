// Op entries for linear (plain and grouped by expert), embedding and the residual add.
#include <string>
#include <utility>

#include "cpu/dense.h"
#include "cpu/linear.h"
#include "cuda/dense.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

namespace {
std::string strides_str(const TensorView& t) {
  std::string s = "[";
  for (int d = 0; d < t.ndim; ++d) s += (d ? ", " : "") + std::to_string(t.stride(d));
  return s + "]";
}

// Expert e of a KN weight [E, N, K] as the row-major [K, N] it is.
TensorView kn_expert(const TensorView& w, int64_t e) {
  const int64_t N = w.size(1), K = w.size(2);
  void* data = static_cast<char*>(w.data) + e * w.stride(0) * int64_t(element_size(w.dtype));
  return TensorView(data, w.dtype, {K, N}, {K == 1 ? N : w.stride(2), 1}, w.device);
}
}  // namespace

void linear(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& w) {
  constexpr const char* op = "linear";
  detail::check_dtype_in(op, "x", x, {DType::F32, DType::BF16});
  detail::check_same_dtype(op, "w", w, "x", x);
  detail::check_ndim(op, "x", x, 2);
  detail::check_ndim(op, "w", w, 2);
  LLAMA4_CHECK_ARG(w.size(1) == x.size(1), op, ": 'w' must have shape [N, ", x.size(1),
                   "] to match 'x' ", x.shape_str(), ", got ", w.shape_str());
  detail::check_dtype_in(op, "out", out, {x.dtype, DType::F32});
  detail::check_shape(op, "out", out, {x.size(0), w.size(0)});
  detail::check_contiguous_out(op, "out", out);
  detail::check_same_device(op, "w", w, "x", x);
  detail::check_same_device(op, "out", out, "x", x);
  detail::check_context(op, ctx, "x", x);
  if (out.numel() == 0) return;
  if (x.size(1) == 0) {
    ctx.zero(out);
    return;
  }
  // x may keep a row stride; anything else is copied to contiguous rows.
  const bool rows_ok = x.stride(1) == 1 && x.stride(0) >= x.size(1);
  const detail::ContiguousInput xc(ctx, rows_ok ? TensorView() : x), wc(ctx, w);
  const TensorView& xv = rows_ok ? x : xc.view();
  switch (x.device.type) {
    case DeviceType::CPU: cpu::linear(out, xv, wc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::linear(ctx, out, xv, wc)); break;
  }
}

ExpertLayout expert_layout(const TensorView& w) {
  if (w.ndim != 3) return ExpertLayout::Other;
  if (w.is_contiguous()) return ExpertLayout::NK;
  const int64_t E = w.size(0), N = w.size(1), K = w.size(2);
  const bool kn = (N == 1 || w.stride(1) == 1) && (K == 1 || w.stride(2) == N) && (E == 1 || w.stride(0) >= N * K);
  return kn ? ExpertLayout::KN : ExpertLayout::Other;
}

void grouped_linear(const Context& ctx, const TensorView& out, const TensorView& x,
                    const TensorView& w, const TensorView& offsets) {
  constexpr const char* op = "grouped_linear";
  detail::check_dtype_in(op, "x", x, {DType::F32, DType::BF16});
  detail::check_same_dtype(op, "w", w, "x", x);
  detail::check_same_dtype(op, "out", out, "x", x);
  detail::check_ndim(op, "x", x, 2);
  detail::check_ndim(op, "w", w, 3);
  detail::check_dtype(op, "offsets", offsets, DType::I32);
  const int64_t R = x.size(0), K = x.size(1), E = w.size(0), N = w.size(1);
  LLAMA4_CHECK_ARG(w.size(2) == K, op, ": 'w' must have shape [E, N, ", K, "] to match 'x' ",
                   x.shape_str(), ", got ", w.shape_str());
  LLAMA4_CHECK_ARG(E >= 1, op, ": 'w' needs at least one group, got ", w.shape_str());
  detail::check_shape(op, "offsets", offsets, {E + 1});
  detail::check_shape(op, "out", out, {R, N});
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"x", &x}, {"offsets", &offsets}})
    LLAMA4_CHECK_ARG(t->is_contiguous(), op, ": '", name, "' must be contiguous, got shape ",
                     t->shape_str());
  const ExpertLayout layout = expert_layout(w);
  LLAMA4_CHECK_ARG(layout == ExpertLayout::NK || (layout == ExpertLayout::KN && x.device.is_cpu()), op,
                   ": 'w' must be contiguous", x.device.is_cpu() ? " or each expert a transposed row-major [K, N]" : "",
                   ", got shape ", w.shape_str(), " with strides ", strides_str(w));
  detail::check_contiguous_out(op, "out", out);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"w", &w},
                                {"offsets", &offsets}, {"out", &out}})
    detail::check_same_device(op, name, *t, "x", x);
  detail::check_context(op, ctx, "x", x);
  if (out.numel() == 0) return;
  if (K == 0) {
    ctx.zero(out);
    return;
  }
  switch (x.device.type) {
    case DeviceType::CPU: {
      const int32_t* off = offsets.ptr<int32_t>();
      LLAMA4_CHECK_ARG(off[0] == 0 && off[E] <= R, op, ": 'offsets' must run from 0 to at most ", R,
                       " (the rows of 'x'), got ", off[0], " .. ", off[E]);
      for (int64_t e = 0; e < E; ++e)
        LLAMA4_CHECK_ARG(off[e] <= off[e + 1], op, ": 'offsets' must be non-decreasing, got offsets[",
                         e, "] = ", off[e], " > offsets[", e + 1, "] = ", off[e + 1]);
      for (int64_t e = 0; e < E; ++e) {
        if (off[e + 1] == off[e]) continue;
        const TensorView rows_out = out.slice0(off[e], off[e + 1]), rows_x = x.slice0(off[e], off[e + 1]);
        if (layout == ExpertLayout::KN) {
          cpu::linear_kn(rows_out, rows_x, kn_expert(w, e));
        } else {
          cpu::linear(rows_out, rows_x, w.select0(e));
        }
      }
      break;
    }
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::grouped_linear(ctx, out, x, w, offsets)); break;
  }
}

// A plain lookup is the fused embedding without image placeholders (one kernel, one id check).
void embedding(const Context& ctx, const TensorView& out, const TensorView& table,
               const TensorView& ids) {
  embedding_fused(ctx, out, table, ids, TensorView(), -1, 0);
}

void add(const Context& ctx, const TensorView& out, const TensorView& a, const TensorView& b) {
  constexpr const char* op = "add";
  detail::check_activation(op, "a", a);
  detail::check_same_dtype(op, "b", b, "a", a);
  detail::check_same_dtype(op, "out", out, "a", a);
  detail::check_shape(op, "b", b, a.sizes());
  detail::check_shape(op, "out", out, a.sizes());
  detail::check_contiguous_out(op, "out", out);
  detail::check_same_device(op, "b", b, "a", a);
  detail::check_same_device(op, "out", out, "a", a);
  detail::check_context(op, ctx, "a", a);
  if (out.numel() == 0) return;
  const detail::ContiguousInput ac(ctx, a), bc(ctx, b);
  switch (a.device.type) {
    case DeviceType::CPU: cpu::add(out, ac, bc); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::add(ctx, out, ac, bc)); break;
  }
}

}  // namespace llama4::ops
