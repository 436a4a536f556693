// CPU residual add with one rounding.
#include "cpu/dense.h"

#include "cpu/elem.h"

namespace llama4::cpu {

namespace {
template <typename T>
void add_impl(const TensorView& out, const TensorView& a, const TensorView& b) {
  using E = Elem<T>;
  const int64_t n = out.numel();
  const T* ap = a.ptr<T>();
  const T* bp = b.ptr<T>();
  T* op = out.ptr<T>();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) E::store(op, i, E::load(ap, i) + E::load(bp, i));
}
}  // namespace

void add(const TensorView& out, const TensorView& a, const TensorView& b) {
  LLAMA4_DISPATCH_ACT(out.dtype, "add", add_impl, out, a, b);
}

}  // namespace llama4::cpu
