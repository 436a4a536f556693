// CPU dense (unmasked) attention for the vision encoder: every token of a tile attends to every
// token of the same tile. Shapes: q, k, v, out [B, N, H, d] (B tiles, N tokens, H heads).
//
// Per (tile, head), one task of the OpenMP loop: gather k into a contiguous fp32 [N, d] panel and v
// transposed, [d, N] (this also widens bf16 and absorbs any input strides, e.g. views into a fused
// QKV projection); then per block of kRows query rows (gathered the same way) both products are
// BLAS sgemm calls (single-threaded inside the OpenMP loop): scores = q k^T, then
// softmax(scale * scores) with the row max subtracted, then out = (p v) / sum(p), rounded once.
// All fp32. The panels and a block's scores ([kRows, N] fp32, 295 KB for N = 577) stay in the
// thread's cache; nothing tensor-sized is allocated (whose page faults cost more than the math).
#include "cpu/dense_attention.h"

#include <algorithm>
#include <vector>

#include "cpu/attention_micro.h"
#include "cpu/blas.h"
#include "cpu/elem.h"

namespace llama4::cpu {

namespace {

constexpr int64_t kRows = 128;

// Rows [n0, n0 + rows) of head h of tile b as an fp32 panel: dst[n * d + x] (transposed:
// dst[x * rows + n]).
template <typename T>
void gather_panel(float* dst, const TensorView& src, int64_t b, int64_t h, int64_t n0, int64_t rows,
                  bool transposed) {
  const int64_t d = src.size(3);
  const int64_t sb = src.stride(0), sn = src.stride(1), sh = src.stride(2), sx = src.stride(3);
  const T* p = src.ptr<T>() + b * sb + h * sh;
  for (int64_t n = 0; n < rows; ++n) {
    const T* row = p + (n0 + n) * sn;
    for (int64_t x = 0; x < d; ++x) dst[transposed ? x * rows + n : n * d + x] = Elem<T>::load(row, x * sx);
  }
}

template <typename T>
void attention_impl(const TensorView& out, const TensorView& q, const TensorView& k,
                    const TensorView& v, float scale) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), d = q.size(3);
  T* op = out.ptr<T>();
  // One (tile, head) per task: its K and V^T panels are gathered once into the thread's own
  // buffers and stay in its cache for all query blocks (no tensor-sized temporaries).
#pragma omp parallel
  {
    std::vector<float> kf(size_t(N * d)), vt(size_t(N * d)), qb(size_t(kRows * d)), s(size_t(kRows * N)),
        o(size_t(kRows * d));
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      gather_panel<T>(kf.data(), k, b, h, 0, N, false);
      gather_panel<T>(vt.data(), v, b, h, 0, N, true);
      for (int64_t r0 = 0; r0 < N; r0 += kRows) {
        const int64_t rows = std::min(kRows, N - r0);
        gather_panel<T>(qb.data(), q, b, h, r0, rows, false);
        blas::sgemm_nt(int(rows), int(N), int(d), qb.data(), int(d), kf.data(), int(d), s.data(), int(N));
        float inv_sum[kRows];
        for (int64_t r = 0; r < rows; ++r) {
          float* sr = s.data() + r * N;
          inv_sum[r] = 1.0f / micro::exp_sub_sum(sr, N, micro::scale_max(sr, N, scale));
        }
        blas::sgemm_nt(int(rows), int(d), int(N), s.data(), int(N), vt.data(), int(N), o.data(), int(d));
        for (int64_t r = 0; r < rows; ++r) {
          T* orow = op + ((b * N + r0 + r) * H + h) * d;
          for (int64_t x = 0; x < d; ++x) Elem<T>::store(orow, x, o[size_t(r * d + x)] * inv_sum[r]);
        }
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
