// Packed AVX512-BF16 GEMM for prefill (cpu/gemm_bf16.h): out[M, N] = x[M, K] . w[N, K]^T.
//
// vdpbf16ps multiplies 16 pairs of bf16 exactly and adds each pair's two products into one fp32
// lane. With weights packed as K-pair interleaved panels -- for 16 output columns, the dword of
// lane j at pair step p holds (w[n0 + j, 2p], w[n0 + j, 2p + 1]) -- one instruction adds a
// broadcast activation pair x[m, 2p..2p+1] times 16 columns' weight pairs into 16 outputs of row
// m: the lanes run along N, so no reduction across lanes is left at the end and every output is
// one fp32 chain over K in order (pair by pair), the same bits whatever the blocking, the thread
// count or the other rows of the batch.
//
// Blocking (Zen 4 here: 32 KB L1d and 1 MB L2 per core, 32 MB L3):
//  - register tile kMR rows x kNV vectors (6 x 64 columns): 24 accumulators, 4 weight vectors and
//    one broadcast of the 32 zmm; per pair step 4 vector loads + 6 broadcasts feed 24 vdpbf16ps;
//  - kKC columns of K (128 pairs) per block: a 64-column micro-panel is 32 KB, re-read for every
//    row tile from L1/L2; the outputs are reloaded once per K block (fp32 chains continue);
//  - kNC columns of N packed at once per thread (256 KB at kKC), reused by all rows in kMC-row
//    blocks (a kMC x kKC block of x is 120 KB), so packing is paid once per weight per call;
//  - tasks of whole column chunks (each packs only its own columns; row chunks too when there are
//    few columns), taken by the threads dynamically (split()).
// Weights are packed per call (a 16 x 16 dword transpose per 16 columns x 32 K): the weight
// layout stays the checkpoint's, which the decode GEMVs stream as is: [N, K] (nn.Linear), or
// [K, N] (Hugging Face's fused experts, x @ W; pack_kn interleaves two rows instead).
#include "cpu/gemm_bf16.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cpu/avx512.h"

namespace llama4::cpu {

bool has_avx512_bf16() {
  // LLAMA4_NO_AVX512_BF16=1 takes the portable path (AVX2 widening), so tests can cover it on
  // machines that have the instructions.
  // The kernels behind this check (here, cpu/gemv.cpp, llama4/roofline.h) are compiled for
  // avx512f/bw/vl/dq + bf16 (cpu/avx512.h), so all of them must be present.
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512bf16") && !std::getenv("LLAMA4_NO_AVX512_BF16");
  return yes;
}

namespace {

constexpr int kMR = 6;            // rows of x per register tile
constexpr int kNV = 4;            // 16-column vectors per register tile
constexpr int64_t kGroup = 16 * kNV;  // columns per register tile (a packed group)
constexpr int64_t kKC = 256;      // K per block (even: blocks start on a pair)
constexpr int64_t kNC = 512;      // columns packed at once per thread
constexpr int64_t kMC = 120;      // rows per block of x (a multiple of kMR)

// _mm512_shuffle_i32x4 with a run-time selector (its immediate must be a constant).
LLAMA4_AVX512 inline __m512i shuffle_lanes(__m512i a, __m512i b, int sel) {
  switch (sel) {
    case 0x00: return _mm512_shuffle_i32x4(a, b, 0x00);
    case 0x55: return _mm512_shuffle_i32x4(a, b, 0x55);
    case 0xAA: return _mm512_shuffle_i32x4(a, b, 0xAA);
    default: return _mm512_shuffle_i32x4(a, b, 0xFF);
  }
}


// Pack w rows [n0, n0 + cols) x K [k0, k0 + klen) into groups of kGroup columns: group g holds
// [pairs][gw] dwords (gw = its columns rounded up to 16), at dst + g * kGroup * pairs. Columns past
// `cols` and the half pair of an odd klen are zeros.
LLAMA4_AVX512 void pack(uint32_t* dst, const uint16_t* w, int64_t K, int64_t n0, int64_t cols,
                        int64_t k0, int64_t klen) {
  const int64_t pairs = (klen + 1) / 2;
  for (int64_t g0 = 0; g0 < cols; g0 += kGroup) {
    const int64_t gcols = std::min(kGroup, cols - g0), gw = (gcols + 15) / 16 * 16;
    uint32_t* gd = dst + g0 * pairs;
    for (int64_t v0 = 0; v0 < gcols; v0 += 16) {  // 16 columns: lanes v0 .. v0 + 15 of each row
      const int64_t vc = std::min<int64_t>(16, gcols - v0);
      for (int64_t p0 = 0; p0 < pairs; p0 += 16) {  // 16 pairs = 32 K at a time
        const __mmask32 km = avx512::mask32(klen - 2 * p0);
        __m512i r[16];
        #pragma GCC unroll 16
        for (int j = 0; j < 16; ++j)
          r[j] = j < vc ? _mm512_maskz_loadu_epi16(km, w + (n0 + g0 + v0 + j) * K + k0 + 2 * p0)
                        : _mm512_setzero_si512();
        // 16 x 16 dword transpose: r[j] dword p -> t[p] dword j.
        __m512i t[16];
        #pragma GCC unroll 16
        for (int j = 0; j < 16; j += 2) {
          t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
          t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
        }
        #pragma GCC unroll 16
        for (int j = 0; j < 16; j += 4) {
          r[j] = _mm512_unpacklo_epi64(t[j], t[j + 2]);
          r[j + 1] = _mm512_unpackhi_epi64(t[j], t[j + 2]);
          r[j + 2] = _mm512_unpacklo_epi64(t[j + 1], t[j + 3]);
          r[j + 3] = _mm512_unpackhi_epi64(t[j + 1], t[j + 3]);
        }
        // r[4q + b], 128-bit lane L: rows 4q..4q+3 at pair 4L + b. Pair 4L + b wants lane L of
        // r[b], r[4 + b], r[8 + b], r[12 + b] side by side.
        #pragma GCC unroll 16
        for (int L = 0; L < 4; ++L) {
          #pragma GCC unroll 16
          for (int b = 0; b < 4; ++b) {
            const int sel = L * 0x55;  // lane L in all four 2-bit fields
            const __m512i lo = shuffle_lanes(r[b], r[4 + b], sel), hi = shuffle_lanes(r[8 + b], r[12 + b], sel);
            t[L * 4 + b] = _mm512_shuffle_i32x4(lo, hi, 0x88);  // lanes 0, 2 of each
          }
        }
        const int64_t np = std::min<int64_t>(16, pairs - p0);
        for (int64_t p = 0; p < np; ++p) {
          _mm512_storeu_si512(gd + (p0 + p) * gw + v0, t[p]);  // rows past vc are zeros
        }
      }
    }
  }
}

// The same panels from w [K, N] with row stride ldw (Hugging Face's x @ W layout, read in place):
// the dwords of pair step p are rows k0 + 2p and k0 + 2p + 1 of 16 columns interleaved (a 16-bit
// unpack per 128-bit lane, then the lanes put in column order). Packing reads two rows' 128 bytes
// at a time; like pack(), it is paid once per weight per call.
LLAMA4_AVX512 void pack_kn(uint32_t* dst, const uint16_t* w, int64_t ldw, int64_t n0, int64_t cols, int64_t k0,
                           int64_t klen) {
  const int64_t pairs = (klen + 1) / 2;
  for (int64_t g0 = 0; g0 < cols; g0 += kGroup) {
    const int64_t gcols = std::min(kGroup, cols - g0), gw = (gcols + 15) / 16 * 16;
    uint32_t* gd = dst + g0 * pairs;
    for (int64_t p = 0; p < pairs; ++p) {
      const uint16_t* r0 = w + (k0 + 2 * p) * ldw + n0 + g0;
      const bool second = 2 * p + 1 < klen;  // else the half pair of an odd klen: zeros
      for (int64_t v0 = 0; v0 < gw; v0 += 16) {
        const __mmask16 m = avx512::mask16(gcols - v0);
        const __m256i a = _mm256_maskz_loadu_epi16(m, r0 + v0);
        const __m256i b = second ? _mm256_maskz_loadu_epi16(m, r0 + ldw + v0) : _mm256_setzero_si256();
        // lanes: columns 0-3, 8-11 (unpacklo), 4-7, 12-15 (unpackhi) -> 0-3, 4-7, 8-11, 12-15
        const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi16(a, b)),
                                             _mm256_unpackhi_epi16(a, b), 1);
        _mm512_storeu_si512(gd + p * gw + v0, _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)));
      }
    }
  }
}

// Where a register tile's sums come from and go: `in` (fp32 partial sums of earlier K blocks;
// nullptr: start from zero), then `f` (fp32: results or partial sums) or, when `h` is set, `h`
// (final results rounded once to bf16 exactly as f32_to_bf16 does). Row strides in elements.
struct Io {
  const float* in;
  int64_t ld_in;
  float* f;
  int64_t ld_f;
  uint16_t* h;
  int64_t ld_h;
  Io at(int64_t row, int64_t col) const {  // the same, moved by row rows and col columns
    return Io{in ? in + row * ld_in + col : nullptr, ld_in, f ? f + row * ld_f + col : nullptr, ld_f,
              h ? h + row * ld_h + col : nullptr, ld_h};
  }
};


// Register tile: io[MR, NV * 16] (the last vector masked by `last`) gets its sums plus
// x[MR, pairs] . panel. x rows have stride lda (elements); `half`: the last pair has only its
// first element in x (odd K), the second is taken as zero.
template <int MR, int NV>
LLAMA4_AVX512 void micro(const Io& io, const uint16_t* x, int64_t lda, const uint32_t* wp, int64_t pairs,
                         bool half, __mmask16 last) {
  __m512 acc[MR][NV];
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < NV; ++j)
      acc[i][j] = io.in == nullptr ? _mm512_setzero_ps()
                                   : _mm512_maskz_loadu_ps(j == NV - 1 ? last : __mmask16(0xFFFF),
                                                           io.in + i * io.ld_in + j * 16);
  const int64_t full = half ? pairs - 1 : pairs;
  for (int64_t p = 0; p < full; ++p) {
    __m512bh wv[NV];
    #pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(wp + p * NV * 16 + j * 16);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(int(avx512::load_pair(x + i * lda + 2 * p)));
      #pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xb, wv[j]);
    }
  }
  if (half) {
    const int64_t p = full;
    __m512bh wv[NV];
    #pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(wp + p * NV * 16 + j * 16);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(int(x[i * lda + 2 * p]));
      #pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xb, wv[j]);
    }
  }
  if (io.h != nullptr) {
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      #pragma GCC unroll 8
      for (int j = 0; j < NV; ++j)
        _mm256_mask_storeu_epi16(io.h + i * io.ld_h + j * 16, j == NV - 1 ? last : __mmask16(0xFFFF),
                                 avx512::to_bf16(acc[i][j]));
  } else {
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      #pragma GCC unroll 8
      for (int j = 0; j < NV; ++j)
        _mm512_mask_storeu_ps(io.f + i * io.ld_f + j * 16, j == NV - 1 ? last : __mmask16(0xFFFF), acc[i][j]);
  }
}

using MicroFn = void (*)(const Io&, const uint16_t*, int64_t, const uint32_t*, int64_t, bool, __mmask16);

template <int MR>
constexpr MicroFn micro_for(int nv) {
  return nv == 1 ? micro<MR, 1> : nv == 2 ? micro<MR, 2> : nv == 3 ? micro<MR, 3> : micro<MR, 4>;
}
MicroFn pick(int mr, int nv) {
  static_assert(kMR == 6 && kNV == 4, "the dispatch table below lists 1..6 x 1..4");
  switch (mr) {
    case 1: return micro_for<1>(nv);
    case 2: return micro_for<2>(nv);
    case 3: return micro_for<3>(nv);
    case 4: return micro_for<4>(nv);
    case 5: return micro_for<5>(nv);
    default: return micro_for<6>(nv);
  }
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<void, FreeDeleter>;
Buffer aligned_buffer(size_t bytes) { return Buffer(std::aligned_alloc(64, (bytes + 63) / 64 * 64)); }

// The weights: [N, K] contiguous, or (kn) [K, N] with row stride ld.
struct Weights {
  const uint16_t* w;
  int64_t ld;
  bool kn;
};

// Rows [m0, m1) x columns [n0, n1) of out (fp32 `outf` or bf16 `outh`, [M, N]), one thread.
// buf: packed weights, (kNC + kGroup) * kKC / 2 dwords; part: bf16 results over several K
// blocks keep their fp32 partial sums there, [m1 - m0, kNC].
void tile(float* outf, uint16_t* outh, const uint16_t* x, int64_t lda, const Weights& w, int64_t N,
          int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, uint32_t* buf, float* part) {
  for (int64_t nc0 = n0; nc0 < n1; nc0 += kNC) {
    const int64_t cols = std::min(kNC, n1 - nc0);
    // this chunk's fp32 sums between K blocks: in the output itself, or in `part`
    float* sums = outh == nullptr ? outf + m0 * N + nc0 : part;
    const int64_t ld_sums = outh == nullptr ? N : kNC;
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      const int64_t klen = std::min(kKC, K - k0), pairs = (klen + 1) / 2;
      const bool half = klen % 2 != 0, last_k = k0 + klen == K;
      const Io io{k0 == 0 ? nullptr : sums, ld_sums, last_k && outh ? nullptr : sums, ld_sums,
                  last_k && outh ? outh + m0 * N + nc0 : nullptr, N};
      if (w.kn) {
        pack_kn(buf, w.w, w.ld, nc0, cols, k0, klen);
      } else {
        pack(buf, w.w, K, nc0, cols, k0, klen);
      }
      for (int64_t mc0 = m0; mc0 < m1; mc0 += kMC) {
        const int64_t mc1 = std::min(m1, mc0 + kMC);
        for (int64_t g0 = 0; g0 < cols; g0 += kGroup) {
          const int64_t gcols = std::min(kGroup, cols - g0);
          const int nv = int((gcols + 15) / 16);
          const __mmask16 last = avx512::mask16(gcols - (nv - 1) * 16);
          const uint32_t* wp = buf + g0 * pairs;
          const MicroFn full = pick(kMR, nv);
          int64_t m = mc0;
          for (; m + kMR <= mc1; m += kMR) full(io.at(m - m0, g0), x + m * lda + k0, lda, wp, pairs, half, last);
          if (m < mc1) pick(int(mc1 - m), nv)(io.at(m - m0, g0), x + m * lda + k0, lda, wp, pairs, half, last);
        }
      }
    }
  }
}

// The work split into tasks of whole column chunks (each packs its own weights) and, when that
// leaves fewer than two tasks per thread, row chunks as well (those re-pack the same columns).
// Threads take tasks as they finish (dynamic): on a shared machine a descheduled thread's work
// goes to the others instead of holding everyone at the end.
struct Split {
  int64_t cols, rows, n_tasks, m_tasks;
};
Split split(int64_t M, int64_t N, int nt) {
  const int64_t groups = (N + kGroup - 1) / kGroup;
  const int64_t want = 4 * int64_t(nt);  // tasks per call: a few per thread to balance
  const int64_t cols = std::min(kNC, std::max<int64_t>(1, (groups + want - 1) / want) * kGroup);
  const int64_t n_tasks = (N + cols - 1) / cols;
  int64_t m_tasks = 1;
  if (n_tasks < 2 * nt) m_tasks = std::min((M + kMC - 1) / kMC, (2 * int64_t(nt) + n_tasks - 1) / n_tasks);
  const int64_t rows = ((M + m_tasks - 1) / m_tasks + kMR - 1) / kMR * kMR;
  return Split{cols, rows, n_tasks, (M + rows - 1) / rows};
}

void gemm(float* outf, uint16_t* outh, const bf16* x, int64_t lda, const Weights& ws, int64_t M, int64_t N,
          int64_t K) {
  if (M <= 0 || N <= 0) return;
  const uint16_t* xs = &x->bits;
  const bool parallel = M * N * K > 262144;
  const Split sp = split(M, N, parallel ? omp_get_max_threads() : 1);
#pragma omp parallel if (parallel)
  {
    const Buffer packed = aligned_buffer(size_t(sp.cols + kGroup) * size_t(kKC / 2) * 4);
    const Buffer partial = aligned_buffer(outh != nullptr && K > kKC ? size_t(sp.rows) * size_t(kNC) * 4 : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < sp.n_tasks * sp.m_tasks; ++task) {
      const int64_t n0 = task % sp.n_tasks * sp.cols, m0 = task / sp.n_tasks * sp.rows;
      tile(outf, outh, xs, lda, ws, N, K, m0, std::min(M, m0 + sp.rows), n0, std::min(N, n0 + sp.cols),
           static_cast<uint32_t*>(packed.get()), static_cast<float*>(partial.get()));
    }
  }
}

}  // namespace

void gemm_bf16_avx512(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N,
                      int64_t K) {
  gemm(out, nullptr, x, lda, Weights{&w->bits, K, false}, M, N, K);
}
void gemm_bf16_avx512(bf16* out, const bf16* x, int64_t lda, const bf16* w, int64_t M, int64_t N,
                      int64_t K) {
  gemm(nullptr, &out->bits, x, lda, Weights{&w->bits, K, false}, M, N, K);
}
void gemm_bf16_avx512_kn(float* out, const bf16* x, int64_t lda, const bf16* w, int64_t ldw, int64_t M,
                         int64_t N, int64_t K) {
  gemm(out, nullptr, x, lda, Weights{&w->bits, ldw, true}, M, N, K);
}
void gemm_bf16_avx512_kn(bf16* out, const bf16* x, int64_t lda, const bf16* w, int64_t ldw, int64_t M,
                         int64_t N, int64_t K) {
  gemm(nullptr, &out->bits, x, lda, Weights{&w->bits, ldw, true}, M, N, K);
}

}  // namespace llama4::cpu
