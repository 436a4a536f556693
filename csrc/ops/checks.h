// Argument checks shared by the op entries. Every message starts with the op name and names the
// argument, e.g. "rms_norm: 'weight' must have shape [64], got [63]".
#pragma once
#include <initializer_list>
#include <optional>
#include <string>

#include "llama4/context.h"
#include "llama4/error.h"
#include "llama4/ops.h"
#include "llama4/tensor.h"

namespace llama4::detail {

inline bool is_activation_dtype(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16;
}

inline void check_dtype(const char* op, const char* name, const TensorView& t, DType want) {
  LLAMA4_CHECK_TYPE(t.dtype == want, op, ": '", name, "' must have dtype ", dtype_name(want),
                    ", got ", dtype_name(t.dtype));
}

inline void check_dtype_in(const char* op, const char* name, const TensorView& t,
                           std::initializer_list<DType> allowed) {
  for (DType d : allowed)
    if (t.dtype == d) return;
  std::string list;
  for (DType d : allowed) list += std::string(list.empty() ? "" : "/") + dtype_name(d);
  throw TypeError(detail::concat(op, ": '", name, "' must have dtype ", list, ", got ",
                                 dtype_name(t.dtype)));
}

inline void check_activation(const char* op, const char* name, const TensorView& t) {
  check_dtype_in(op, name, t, {DType::F32, DType::BF16, DType::F16});
}

inline void check_same_dtype(const char* op, const char* name, const TensorView& t,
                             const char* ref_name, const TensorView& ref) {
  LLAMA4_CHECK_TYPE(t.dtype == ref.dtype, op, ": '", name, "' must have the dtype of '", ref_name,
                    "' (", dtype_name(ref.dtype), "), got ", dtype_name(t.dtype));
}

inline void check_same_device(const char* op, const char* name, const TensorView& t,
                              const char* ref_name, const TensorView& ref) {
  LLAMA4_CHECK_TYPE(t.device == ref.device, op, ": '", name, "' is on ", t.device.str(),
                    " but '", ref_name, "' is on ", ref.device.str());
}

// The op runs in ctx: its tensors must be on ctx's device (checked on the first argument; the
// others are checked against that one).
inline void check_context(const char* op, const Context& ctx, const char* name, const TensorView& t) {
  LLAMA4_CHECK_TYPE(t.device == ctx.device(), op, ": '", name, "' is on ", t.device.str(),
                    " but the op runs in a context on ", ctx.device().str());
}

inline void check_ndim(const char* op, const char* name, const TensorView& t, int ndim) {
  LLAMA4_CHECK_ARG(t.ndim == ndim, op, ": '", name, "' must be ", ndim, "-d, got shape ",
                   t.shape_str());
}

inline void check_shape(const char* op, const char* name, const TensorView& t, const Shape& want) {
  bool ok = t.ndim == int(want.size());
  for (int d = 0; ok && d < t.ndim; ++d) ok = t.shape[d] == want[d];
  LLAMA4_CHECK_ARG(ok, op, ": '", name, "' must have shape ",
                   TensorView(nullptr, t.dtype, want).shape_str(), ", got ", t.shape_str());
}

inline void check_contiguous_out(const char* op, const char* name, const TensorView& t) {
  if (t.is_contiguous()) return;
  std::string strides;
  for (int d = 0; d < t.ndim; ++d) strides += (d ? ", " : "") + std::to_string(t.strides[d]);
  throw ValueError(detail::concat(op, ": output '", name, "' must be contiguous, got shape ",
                                  t.shape_str(), " with strides [", strides, "]"));
}

// A contiguous version of an input: the view itself when already contiguous, else a copy (a
// stream-ordered temporary of ctx).
class ContiguousInput {
 public:
  ContiguousInput(const Context& ctx, const TensorView& t) {
    if (t.is_contiguous()) {
      view_ = t;
    } else {
      copy_ = ops::contiguous(ctx, t);
      view_ = copy_.view();
    }
  }
  const TensorView& view() const { return view_; }
  operator const TensorView&() const { return view_; }

 private:
  Tensor copy_;
  TensorView view_;
};

// An input whose last dimension has unit stride (other strides free, as row-wise kernels take):
// the view itself, or a contiguous copy.
class LastDimContiguousInput {
 public:
  LastDimContiguousInput(const Context& ctx, const TensorView& t) {
    if (t.ndim == 0 || t.strides[t.ndim - 1] == 1 || t.shape[t.ndim - 1] <= 1) {
      view_ = t;
    } else {
      copy_ = ops::contiguous(ctx, t);
      view_ = copy_.view();
    }
  }
  const TensorView& view() const { return view_; }
  operator const TensorView&() const { return view_; }

 private:
  Tensor copy_;
  TensorView view_;
};

}  // namespace llama4::detail
