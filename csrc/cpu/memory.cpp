// CPU strided copy: walks the shape with an index counter; the innermost dimension is a loop.
#include "cpu/memory.h"

#include <cstring>

namespace llama4::cpu {

void copy_strided(const TensorView& dst, const TensorView& src) {
  const int64_t n = src.numel();
  if (n == 0) return;
  const size_t es = element_size(src.dtype);
  if (dst.is_contiguous() && src.is_contiguous()) {
    std::memcpy(dst.data, src.data, size_t(n) * es);
    return;
  }
  const int nd = src.ndim;
  const int64_t inner = nd ? src.shape[nd - 1] : 1;
  const int64_t outer = n / inner;
  const int64_t ss = nd ? src.strides[nd - 1] : 1, ds = nd ? dst.strides[nd - 1] : 1;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t o = 0; o < outer; ++o) {
    // Offsets of row o in both tensors, from its multi-index over the leading dimensions.
    int64_t rem = o, soff = 0, doff = 0;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t idx = rem % src.shape[d];
      rem /= src.shape[d];
      soff += idx * src.strides[d];
      doff += idx * dst.strides[d];
    }
    const char* s = static_cast<const char*>(src.data) + soff * int64_t(es);
    char* dp = static_cast<char*>(dst.data) + doff * int64_t(es);
    for (int64_t i = 0; i < inner; ++i) std::memcpy(dp + i * ds * int64_t(es), s + i * ss * int64_t(es), es);
  }
}

}  // namespace llama4::cpu
