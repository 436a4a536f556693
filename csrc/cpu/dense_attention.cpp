// CPU dense (unmasked) attention for the vision encoder: every token of a tile attends to every
// token of the same tile. Shapes: q, k, v, out [B, N, H, d] (B tiles, N tokens, H heads).
//
// Two phases: (1) gather q, k, v of each (tile, head) into contiguous fp32 [N, d] panels (this
// also widens bf16 and absorbs any input strides, e.g. views into a fused QKV projection);
// (2) per (tile, head, block of query rows): scores = q k^T * scale (fp32), softmax with the row
// max subtracted, out = (p @ v) / sum(p), rounded once. The register-blocked inner loops are the
// paged-attention kernel's (cpu/attention_micro.h). A block of kRows query rows keeps its scores
// ([kRows, N] fp32, 37 KB for N = 577) in cache while they are reused for the V sum.
#include "cpu/dense_attention.h"

#include <algorithm>
#include <vector>

#include "cpu/attention_micro.h"
#include "cpu/elem.h"

namespace llama4::cpu {

namespace {

constexpr int64_t kRows = 16;

template <typename T>
void gather_panels(std::vector<float>& dst, const TensorView& src) {
  const int64_t B = src.size(0), N = src.size(1), H = src.size(2), d = src.size(3);
  const T* p = src.ptr<T>();
  // dst[((b * H + h) * N + n) * d + x]
#pragma omp parallel for collapse(2) schedule(static) if (B * N * H * d > 32768)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t n = 0; n < N; ++n) {
        const T* row = p + b * src.stride(0) + n * src.stride(1) + h * src.stride(2);
        float* o = dst.data() + ((b * H + h) * N + n) * d;
        for (int64_t x = 0; x < d; ++x) o[x] = Elem<T>::load(row, x * src.stride(3));
      }
}

template <typename T>
void attention_impl(const TensorView& out, const TensorView& q, const TensorView& k,
                    const TensorView& v, float scale) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), d = q.size(3);
  const size_t panel = size_t(N * d);
  std::vector<float> qf(size_t(B * H) * panel), kf(qf.size()), vf(qf.size());
  gather_panels<T>(qf, q);
  gather_panels<T>(kf, k);
  gather_panels<T>(vf, v);

  const int64_t blocks = (N + kRows - 1) / kRows;
  T* op = out.ptr<T>();
#pragma omp parallel
  {
    std::vector<float> s(size_t(kRows * N)), acc(size_t(kRows * d));
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H; ++bh)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t r0 = blk * kRows, rows = std::min(kRows, N - r0);
        const float* qp = qf.data() + size_t(bh) * panel + size_t(r0 * d);
        const float* kp = kf.data() + size_t(bh) * panel;
        const float* vp = vf.data() + size_t(bh) * panel;
        micro::qk_scores(qp, d, rows, kp, d, N, d, scale, s.data(), N);
        float inv_sum[kRows];
        for (int64_t r = 0; r < rows; ++r) {
          float* sr = s.data() + r * N;
          const float m = *std::max_element(sr, sr + N);
          inv_sum[r] = 1.0f / micro::exp_sub_sum(sr, N, m);
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        micro::pv_accumulate(s.data(), N, rows, vp, d, N, d, acc.data(), d);
        const int64_t b = bh / H, h = bh % H;
        for (int64_t r = 0; r < rows; ++r) {
          T* orow = op + ((b * N + r0 + r) * H + h) * d;
          for (int64_t x = 0; x < d; ++x) Elem<T>::store(orow, x, acc[size_t(r * d + x)] * inv_sum[r]);
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
