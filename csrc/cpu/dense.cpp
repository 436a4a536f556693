// CPU residual add with one rounding.
#include "cpu/dense.h"

#include <algorithm>

#include "cpu/elem.h"
#include "cpu/vec8.h"

namespace llama4::cpu {

namespace {
template <typename T>
void add_impl(const TensorView& out, const TensorView& a, const TensorView& b) {
  using E = Elem<T>;
  const int64_t n = out.numel();
  const T* ap = a.ptr<T>();
  const T* bp = b.ptr<T>();
  T* op = out.ptr<T>();
  constexpr int64_t kBlock = 4096;  // per OpenMP chunk: whole vectors but for the last block
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t end = std::min(n, (blk + 1) * kBlock);
    int64_t i = blk * kBlock;
#if LLAMA4_VEC8
    if constexpr (vec8::kVec8<T>) {  // the same one rounding per element, eight at a time
      for (; i + 8 <= end; i += 8) vec8::store(op + i, _mm256_add_ps(vec8::load(ap + i), vec8::load(bp + i)));
    }
#endif
    for (; i < end; ++i) E::store(op, i, E::load(ap, i) + E::load(bp, i));
  }
}
}  // namespace

void add(const TensorView& out, const TensorView& a, const TensorView& b) {
  LLAMA4_DISPATCH_ACT(out.dtype, "add", add_impl, out, a, b);
}

}  // namespace llama4::cpu
