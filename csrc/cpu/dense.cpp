// CPU embedding lookup (row gather) and residual add with one rounding.
#include "cpu/dense.h"

#include <cstring>

#include "cpu/elem.h"

namespace llama4::cpu {

void embedding(const TensorView& out, const TensorView& table, const TensorView& ids) {
  const int64_t T = ids.size(0), D = table.size(1);
  const size_t row_bytes = size_t(D) * element_size(table.dtype);
  const bool ids64 = ids.dtype == DType::I64;
#pragma omp parallel for schedule(static) if (T * D > 65536)
  for (int64_t t = 0; t < T; ++t) {
    const int64_t id = ids64 ? ids.ptr<int64_t>()[t] : ids.ptr<int32_t>()[t];
    std::memcpy(static_cast<char*>(out.data) + t * row_bytes,
                static_cast<const char*>(table.data) + id * row_bytes, row_bytes);
  }
}

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
