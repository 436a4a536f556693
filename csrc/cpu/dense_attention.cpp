// CPU dense (unmasked) attention for the vision encoder: every token of a tile attends to every
// token of the same tile. Shapes: q, k, v, out [B, N, H, d] (B tiles, N tokens, H heads).
//
// Two phases: (1) gather q and k of each (tile, head) into contiguous fp32 [N, d] panels and v
// transposed, [d, N] (this also widens bf16 and absorbs any input strides, e.g. views into a fused
// QKV projection); (2) per (tile, head, block of kRows query rows), both products are BLAS sgemm
// calls (single-threaded inside the OpenMP loop): scores = q k^T, then softmax(scale * scores) with
// the row max subtracted, then out = (p v) / sum(p), rounded once. All fp32. A block's scores
// ([kRows, N] fp32, 295 KB for N = 577) stay in cache between the two products.
#include "cpu/dense_attention.h"

#include <algorithm>
#include <vector>

#include "cpu/attention_micro.h"
#include "cpu/blas.h"
#include "cpu/elem.h"

namespace llama4::cpu {

namespace {

constexpr int64_t kRows = 128;

// dst[((b * H + h) * N + n) * d + x] (transposed: [((b * H + h) * d + x) * N + n]).
template <typename T>
void gather_panels(std::vector<float>& dst, const TensorView& src, bool transposed) {
  const int64_t B = src.size(0), N = src.size(1), H = src.size(2), d = src.size(3);
  const int64_t sb = src.stride(0), sn = src.stride(1), sh = src.stride(2), sx = src.stride(3);
  const T* p = src.ptr<T>();
#pragma omp parallel for collapse(2) schedule(static) if (B * N * H * d > 32768)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      float* panel = dst.data() + (b * H + h) * N * d;
      for (int64_t n = 0; n < N; ++n) {
        const T* row = p + b * sb + n * sn + h * sh;
        for (int64_t x = 0; x < d; ++x) panel[transposed ? x * N + n : n * d + x] = Elem<T>::load(row, x * sx);
      }
    }
}

template <typename T>
void attention_impl(const TensorView& out, const TensorView& q, const TensorView& k,
                    const TensorView& v, float scale) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), d = q.size(3);
  const size_t panel = size_t(N * d);
  std::vector<float> qf(size_t(B * H) * panel), kf(qf.size()), vt(qf.size());
  gather_panels<T>(qf, q, false);
  gather_panels<T>(kf, k, false);
  gather_panels<T>(vt, v, true);

  const int64_t blocks = (N + kRows - 1) / kRows;
  T* op = out.ptr<T>();
#pragma omp parallel
  {
    std::vector<float> s(size_t(kRows * N)), o(size_t(kRows * d));
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H; ++bh)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t r0 = blk * kRows, rows = std::min(kRows, N - r0);
        const float* qp = qf.data() + size_t(bh) * panel + size_t(r0 * d);
        blas::sgemm_nt(int(rows), int(N), int(d), qp, int(d), kf.data() + size_t(bh) * panel, int(d),
                       s.data(), int(N));
        float inv_sum[kRows];
        for (int64_t r = 0; r < rows; ++r) {
          float* sr = s.data() + r * N;
          for (int64_t j = 0; j < N; ++j) sr[j] *= scale;
          const float m = *std::max_element(sr, sr + N);
          inv_sum[r] = 1.0f / micro::exp_sub_sum(sr, N, m);
        }
        blas::sgemm_nt(int(rows), int(d), int(N), s.data(), int(N), vt.data() + size_t(bh) * panel, int(N),
                       o.data(), int(d));
        const int64_t b = bh / H, h = bh % H;
        for (int64_t r = 0; r < rows; ++r) {
          T* orow = op + ((b * N + r0 + r) * H + h) * d;
          for (int64_t x = 0; x < d; ++x) Elem<T>::store(orow, x, o[size_t(r * d + x)] * inv_sum[r]);
        }
      }
  }
}

}  // namespace

void attention_dense(const TensorView& out, const TensorView& q, const TensorView& k,
                     const TensorView& v, float scale) {
  LLAMA4_DISPATCH_ACT(q.dtype, "attention_dense", attention_impl, out, q, k, v, scale);
}

}  // namespace llama4::cpu
