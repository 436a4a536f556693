// AVX512-BF16 INT4 grouped GEMM (contract: llama4/moe_int4.h). The packed weights are unpacked in
// registers, never widened in memory, so decode streams 4 bits per weight from memory:
//   16 bytes (32 int4, k = 2j low nibble, 2j + 1 high nibble of byte j) -> vpmovzxbd: byte j in
//   dword j -> v | (v << 12): the low word holds the byte (its bits 0..4 = the low nibble plus one
//   bit of the high nibble), the high word holds the high nibble -> one vpermw through a 32-entry
//   table mapping index i to bf16(int4 value of i & 15). Each dword is then exactly the
//   (k = 2j, 2j + 1) pair of bf16 values vdpbf16ps multiplies with the pair x[2j], x[2j + 1].
// Products bf16 x small integer are exact in fp32; one group is accumulated in fp32 (16 lanes, two
// chains), then multiplied by the group's scale into a per-lane total (one FMA), reduced at the end.
// Work: one parallel loop over (expert, block of weight rows), so each thread streams a contiguous
// range of weights (decode); an expert's activation rows pass over a block in chunks kept in L2
// (prefill), MR rows at a time sharing each unpacked weight vector.
#include <algorithm>
#include <vector>

#include "cpu/avx512.h"
#include "cpu/moe_int4.h"

namespace llama4::cpu {

namespace {

constexpr int64_t kBlockRows = 16;  // weight rows per work item
constexpr int kMR = 8;              // activation rows sharing one unpacked weight vector
constexpr int64_t kRowChunk = 64;   // activation rows per pass over a block (64 x K bf16 in L2)

struct NibbleTable {
  alignas(64) uint16_t v[32];
  NibbleTable() {
    for (int i = 0; i < 32; ++i) {
      const int q = (i & 15) < 8 ? (i & 15) : (i & 15) - 16;
      v[i] = f32_to_bf16(float(q));
    }
  }
};

LLAMA4_AVX512 inline __m512bh unpack(const uint8_t* p, __m512i table) {
  __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  v = _mm512_or_si512(v, _mm512_slli_epi32(v, 12));
  return (__m512bh)_mm512_permutexvar_epi16(v, table);
}

// MR activation rows x (row stride K) against one weight row (packed wr, scales sr):
// out[m * N] for m < MR.
template <int MR>
LLAMA4_AVX512 void row_dot(bf16* out, int64_t N, const bf16* x, int64_t K, const uint8_t* wr,
                           const bf16* sr, int64_t G, __m512i table) {
  __m512 total[MR];
  for (int m = 0; m < MR; ++m) total[m] = _mm512_setzero_ps();
  const int64_t steps = G / 32;
  for (int64_t g0 = 0; g0 < K; g0 += G) {
    __m512 a0[MR], a1[MR];
    for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm512_setzero_ps();
    const uint8_t* wp = wr + g0 / 2;
    const bf16* xp = x + g0;
    int64_t s = 0;
    for (; s + 2 <= steps; s += 2) {
      const __m512bh w0 = unpack(wp + s * 16, table), w1 = unpack(wp + s * 16 + 16, table);
      for (int m = 0; m < MR; ++m)
        a0[m] = _mm512_dpbf16_ps(a0[m], (__m512bh)_mm512_loadu_si512(xp + m * K + s * 32), w0);
      for (int m = 0; m < MR; ++m)
        a1[m] = _mm512_dpbf16_ps(a1[m], (__m512bh)_mm512_loadu_si512(xp + m * K + s * 32 + 32), w1);
    }
    if (s < steps) {
      const __m512bh w0 = unpack(wp + s * 16, table);
      for (int m = 0; m < MR; ++m)
        a0[m] = _mm512_dpbf16_ps(a0[m], (__m512bh)_mm512_loadu_si512(xp + m * K + s * 32), w0);
    }
    const __m512 sc = _mm512_set1_ps(bf16_to_f32(sr[g0 / G].bits));
    for (int m = 0; m < MR; ++m) total[m] = _mm512_fmadd_ps(_mm512_add_ps(a0[m], a1[m]), sc, total[m]);
  }
  for (int m = 0; m < MR; ++m) out[m * N].bits = f32_to_bf16(_mm512_reduce_add_ps(total[m]));
}

LLAMA4_AVX512 void rows_dot(int mr, bf16* out, int64_t N, const bf16* x, int64_t K, const uint8_t* wr,
                            const bf16* sr, int64_t G, __m512i table) {
  switch (mr) {
    case 1: row_dot<1>(out, N, x, K, wr, sr, G, table); break;
    case 2: row_dot<2>(out, N, x, K, wr, sr, G, table); break;
    case 3: row_dot<3>(out, N, x, K, wr, sr, G, table); break;
    case 4: row_dot<4>(out, N, x, K, wr, sr, G, table); break;
    case 5: row_dot<5>(out, N, x, K, wr, sr, G, table); break;
    case 6: row_dot<6>(out, N, x, K, wr, sr, G, table); break;
    case 7: row_dot<7>(out, N, x, K, wr, sr, G, table); break;
    default: row_dot<8>(out, N, x, K, wr, sr, G, table); break;
  }
}

// One work item: weight rows [n0, n1) of expert e against all of its activation rows.
LLAMA4_AVX512 void block(const Int4Gemm& a, int64_t e, int64_t n0, int64_t n1, const uint16_t* nibbles) {
  const __m512i table = _mm512_load_si512(nibbles);
  const int64_t N = a.N, K = a.K, G = a.G, KB = K / 2, NG = K / G;
  const int64_t r0 = a.off[e], M = a.off[e + 1] - r0;
  for (int64_t m0 = 0; m0 < M; m0 += kRowChunk) {
    const int64_t mc = std::min(kRowChunk, M - m0);
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* wr = a.w + (e * N + n) * KB;
      const bf16* sr = a.w_scale + (e * N + n) * NG;
      for (int64_t mm = 0; mm < mc; mm += kMR) {
        const int64_t r = r0 + m0 + mm;
        rows_dot(int(std::min<int64_t>(kMR, mc - mm)), a.out + r * N + n, N, a.x + r * K, K, wr, sr, G, table);
      }
    }
  }
}

}  // namespace

void moe_grouped_gemm_int4_avx512(const Int4Gemm& a) {
  static const NibbleTable nibbles;
  const int64_t blocks = (a.N + kBlockRows - 1) / kBlockRows;
  std::vector<int64_t> experts;  // the experts that own rows
  int64_t max_rows = 0;
  for (int64_t e = 0; e < a.E; ++e) {
    const int64_t M = a.off[e + 1] - a.off[e];
    if (M > 0) experts.push_back(e);
    max_rows = std::max(max_rows, M);
  }
  const int64_t work = int64_t(experts.size()) * blocks;
  const bool parallel = work * kBlockRows * max_rows * a.K > 65536;
  auto item = [&](int64_t j) {
    const int64_t n0 = (j % blocks) * kBlockRows;
    block(a, experts[size_t(j / blocks)], n0, std::min(a.N, n0 + kBlockRows), nibbles.v);
  };
  if (max_rows <= kMR) {  // decode: equal items; each thread streams one contiguous weight range
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t j = 0; j < work; ++j) item(j);
  } else {  // prefill: experts own different row counts
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
    for (int64_t j = 0; j < work; ++j) item(j);
  }
}

}  // namespace llama4::cpu
