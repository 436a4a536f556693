// AVX512-BF16 INT4 grouped GEMM (contract: llama4/moe_int4.h). The packed weights are unpacked in
// registers, never widened in memory, so decode streams 4 bits per weight from memory:
//   16 bytes (32 int4, k = 2j low nibble, 2j + 1 high nibble of byte j) -> vpmovzxbd: byte j in
//   dword j -> v | (v << 12): the low word holds the byte (its bits 0..4 = the low nibble plus one
//   bit of the high nibble), the high word holds the high nibble -> one vpermw through a 32-entry
//   table mapping index i to bf16(int4 value of i & 15). Each dword is then exactly the
//   (k = 2j, 2j + 1) pair of bf16 values vdpbf16ps multiplies with the pair x[2j], x[2j + 1].
// With groups of a multiple of 64 (the common 128) a cheaper unpack serves 64 weights at once:
//   32 bytes -> vpmovzxbw: byte i in word i -> vpermw of it (its bits 0..4: low nibble + one bit of
//   the high one) gives the low nibbles, vpermw of it >> 4 the high nibbles. Dword j of the first
//   vector then holds k = 4j and 4j + 2, of the second k = 4j + 1 and 4j + 3, so the activation
//   rows are permuted to that order once per call (permute_pairs) instead of the weights per row:
//   6 vector operations per 64 weights instead of 10, which matters because one core unpacks
//   slower than memory delivers int4.
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
  for (int64_t g = 0, g0 = 0; g0 < K; ++g, g0 += G) {
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
    const __m512 sc = _mm512_set1_ps(bf16_to_f32(sr[g].bits));
    for (int m = 0; m < MR; ++m) total[m] = _mm512_fmadd_ps(_mm512_add_ps(a0[m], a1[m]), sc, total[m]);
  }
  for (int m = 0; m < MR; ++m) out[m * N].bits = f32_to_bf16(_mm512_reduce_add_ps(total[m]));
}

// row_dot for G % 64 == 0 on activation rows permuted by permute_pairs.
template <int MR>
LLAMA4_AVX512 void row_dot64(bf16* out, int64_t N, const bf16* x, int64_t K, const uint8_t* wr,
                             const bf16* sr, int64_t G, __m512i table) {
  __m512 total[MR];
  for (int m = 0; m < MR; ++m) total[m] = _mm512_setzero_ps();
  for (int64_t g = 0, g0 = 0; g0 < K; ++g, g0 += G) {
    __m512 a0[MR], a1[MR];
    for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm512_setzero_ps();
    for (int64_t c = g0; c < g0 + G; c += 64) {
      const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + c / 2)));
      const __m512bh lo = (__m512bh)_mm512_permutexvar_epi16(w, table);
      const __m512bh hi = (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(w, 4), table);
      for (int m = 0; m < MR; ++m)
        a0[m] = _mm512_dpbf16_ps(a0[m], (__m512bh)_mm512_loadu_si512(x + m * K + c), lo);
      for (int m = 0; m < MR; ++m)
        a1[m] = _mm512_dpbf16_ps(a1[m], (__m512bh)_mm512_loadu_si512(x + m * K + c + 32), hi);
    }
    const __m512 sc = _mm512_set1_ps(bf16_to_f32(sr[g].bits));
    for (int m = 0; m < MR; ++m) total[m] = _mm512_fmadd_ps(_mm512_add_ps(a0[m], a1[m]), sc, total[m]);
  }
  for (int m = 0; m < MR; ++m) out[m * N].bits = f32_to_bf16(_mm512_reduce_add_ps(total[m]));
}

// Row r of x [rows, K] (K % 64 == 0) into the order row_dot64 reads: per 64 values, the pairs
// (4j, 4j + 2) for j < 16, then the pairs (4j + 1, 4j + 3).
LLAMA4_AVX512 void permute_pairs(bf16* dst, const bf16* src, int64_t K) {
  alignas(64) uint16_t ia[32], ib[32];
  for (int j = 0; j < 16; ++j) {
    ia[2 * j] = uint16_t(4 * j), ia[2 * j + 1] = uint16_t(4 * j + 2);
    ib[2 * j] = uint16_t(4 * j + 1), ib[2 * j + 1] = uint16_t(4 * j + 3);
  }
  const __m512i va = _mm512_load_si512(ia), vb = _mm512_load_si512(ib);
  for (int64_t c = 0; c < K; c += 64) {
    const __m512i lo = _mm512_loadu_si512(src + c), hi = _mm512_loadu_si512(src + c + 32);
    _mm512_storeu_si512(dst + c, _mm512_permutex2var_epi16(lo, va, hi));
    _mm512_storeu_si512(dst + c + 32, _mm512_permutex2var_epi16(lo, vb, hi));
  }
}

LLAMA4_AVX512 void rows_dot(int mr, bf16* out, int64_t N, const bf16* x, int64_t K, const uint8_t* wr,
                            const bf16* sr, int64_t G, __m512i table) {
  if (G % 64 == 0) {
    switch (mr) {
      case 1: row_dot64<1>(out, N, x, K, wr, sr, G, table); break;
      case 2: row_dot64<2>(out, N, x, K, wr, sr, G, table); break;
      case 3: row_dot64<3>(out, N, x, K, wr, sr, G, table); break;
      case 4: row_dot64<4>(out, N, x, K, wr, sr, G, table); break;
      case 5: row_dot64<5>(out, N, x, K, wr, sr, G, table); break;
      case 6: row_dot64<6>(out, N, x, K, wr, sr, G, table); break;
      case 7: row_dot64<7>(out, N, x, K, wr, sr, G, table); break;
      default: row_dot64<8>(out, N, x, K, wr, sr, G, table); break;
    }
    return;
  }
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

void moe_grouped_gemm_int4_avx512(const Int4Gemm& args) {
  static const NibbleTable nibbles;
  Int4Gemm a = args;
  std::vector<bf16> permuted;  // G % 64 == 0: the rows in row_dot64's order
  if (a.G % 64 == 0) {
    const int64_t rows = a.off[a.E];
    permuted.resize(size_t(rows * a.K));
#pragma omp parallel for schedule(static) if (rows * a.K > (1 << 18))
    for (int64_t r = 0; r < rows; ++r) permute_pairs(permuted.data() + r * a.K, a.x + r * a.K, a.K);
    a.x = permuted.data();
  }
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
