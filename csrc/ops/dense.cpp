// Op entries for linear, embedding and the residual add.
#include "cpu/dense.h"
#include "cpu/linear.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

void linear(const TensorView& out, const TensorView& x, const TensorView& w) {
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
  if (out.numel() == 0) return;
  if (x.size(1) == 0) {
    memset_zero(out);
    return;
  }
  // x may keep a row stride; anything else is copied to contiguous rows.
  const bool rows_ok = x.stride(1) == 1 && x.stride(0) >= x.size(1);
  const detail::ContiguousInput xc(rows_ok ? TensorView() : x), wc(w);
  const TensorView& xv = rows_ok ? x : xc.view();
  switch (x.device.type) {
    case DeviceType::CPU: cpu::linear(out, xv, wc); break;
    case DeviceType::CUDA: detail::throw_cuda_not_implemented("linear");
  }
}

// A plain lookup is the fused embedding without image placeholders (one kernel, one id check).
void embedding(const TensorView& out, const TensorView& table, const TensorView& ids) {
  embedding_fused(out, table, ids, TensorView(), -1, 0);
}

void add(const TensorView& out, const TensorView& a, const TensorView& b) {
  constexpr const char* op = "add";
  detail::check_activation(op, "a", a);
  detail::check_same_dtype(op, "b", b, "a", a);
  detail::check_same_dtype(op, "out", out, "a", a);
  detail::check_shape(op, "b", b, a.sizes());
  detail::check_shape(op, "out", out, a.sizes());
  detail::check_contiguous_out(op, "out", out);
  detail::check_same_device(op, "b", b, "a", a);
  detail::check_same_device(op, "out", out, "a", a);
  if (out.numel() == 0) return;
  const detail::ContiguousInput ac(a), bc(b);
  switch (a.device.type) {
    case DeviceType::CPU: cpu::add(out, ac, bc); break;
    case DeviceType::CUDA: detail::throw_cuda_not_implemented("add");
  }
}

}  // namespace llama4::ops
