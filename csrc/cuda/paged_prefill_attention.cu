// Paged prefill attention on tensor cores (FlashAttention-2's scheme over a paged cache; contract:
// cuda/paged_prefill_attention.h).
//
// Tiles. A tile is up to 64 / R consecutive batch entries of one sequence at consecutive positions
// in one window (ops::prefill_tiles, the host twin of plan_tiles_kernel, which computes them on the
// device from query_seq/query_pos: the host never reads them, the grid is sized from shapes and
// its blocks stride over however many tiles there are). A block takes (tile, KV head g); its 64
// rows are the tile's queries times the R query heads of g (row = query * R + head), so each K/V
// row it reads serves all of them (FlashInfer's GQA packing). Rows past the tile are padding:
// zero queries, never stored, and a warp whose 16 rows are all padding skips the math.
//
// Per tile: the query rows go through shared memory into registers (A fragments, the NoPE
// temperature applied and rounded to bf16 first, llama4/mathfn.h as the CPU); then the keys of the
// union of the rows' windows, [window start, last position], in tiles of 64: each key row is
// gathered through the page table by cp.async into a padded shared tile (double buffered: tile
// k+1 loads while tile k is used). S = Q K^T and O += P V run on mma.sync m16n8k16 (bf16 in, fp32
// accumulate); the causal limit masks scores per row; the online softmax (running max, sum, a
// rescale of O) is fp32 per row, in log2 units (exp2 of the scores times scale * log2 e).
//
// Accuracy. Q, K and V reach the tensor cores exactly (bf16 values, fp32 products and sums); the
// one rounding the CPU does not do is P to bf16 before P V (|dP| <= 2^-8 P), so an output differs
// from the CPU's by at most 2^-8 * sum_j p_j |v_j| / l before its own rounding (the tests' bound).
// FP8 caches: K and V are e4m3 (exact in bf16) times a per-(key, head) scale; the K scale multiplies
// the fp32 score and the V scale multiplies p before its rounding, so the same bound holds and no
// scaled value is ever rounded to bf16. The row sum l uses the unrounded fp32 p.
//
// Page faults: a key of a tile's range whose page entry is bad is zero-filled and its index is
// kept (the least one per tile); rows whose position reaches it get NaN, as the split-KV kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/mma_sm80.cuh"
#include "cuda/paged_prefill_attention.h"
#include "llama4/mathfn.h"
#include "llama4/numeric.h"
#include "ops/attention_plan.h"

namespace llama4::cuda {

namespace {

constexpr int kBM = int(ops::kPrefillTileRows);  // query rows per tile (16 per warp)
constexpr int kBN = 64;                           // keys per K/V tile
constexpr int kWarps = kBM / 16;
constexpr int kThreads = kWarps * 32;
constexpr int kPlanThreads = 1024;
constexpr uint16_t kBf16NaN = 0x7FC0;

struct PrefillArgs {
  const uint16_t* q;  // bf16 bits
  int64_t q_s0, q_s1;  // strides (elements) of the token and head dims; the last dim is dense
  uint16_t* out;       // [T, H, d] contiguous
  const void* kc;      // [num_pages, P, KV, d] bf16 or e4m3
  const void* vc;
  const float* ks;  // FP8 caches: [num_pages, P, KV] scales (else null)
  const float* vs;
  const int32_t* table;
  int64_t max_pages, num_seqs;
  const int32_t* qseq;
  const int32_t* qpos;
  const int32_t* tiles;  // [0] = tile count n, [1 + i] = first query of tile i, [1 + n] = T
  int64_t H, KV, R, P, num_pages;
  float scale_log2;  // softmax scale * log2(e)
  int64_t chunk;
  float attn_scale, floor_scale;
};

__device__ __forceinline__ int64_t window_start(int64_t pos, int64_t chunk) {
  return chunk > 0 ? pos / chunk * chunk : 0;
}

// ---- the device planner (ops::prefill_tiles' loop, one block) ----

// Exclusive scan of one int per thread over the 1024-thread block with an associative op.
template <typename Op>
__device__ int block_exclusive_scan(int v, int identity, Op op, int* s_warp) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x = op(y, x);
  }
  if (lane == 31) s_warp[warp] = x;  // the warp's total
  __syncthreads();
  if (warp == 0) {
    int w = s_warp[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w = op(y, w);
    }
    s_warp[lane] = w;  // inclusive over the warps
  }
  __syncthreads();
  int before = __shfl_up_sync(0xffffffffu, x, 1);
  if (lane == 0) before = identity;
  const int r = op(warp > 0 ? s_warp[warp - 1] : identity, before);
  __syncthreads();  // s_warp is reused by the next scan
  return r;
}

struct MaxOp {
  __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};
struct AddOp {
  __device__ int operator()(int a, int b) const { return a + b; }
};

__device__ __forceinline__ bool run_breaks(const int32_t* qseq, const int32_t* qpos, int64_t t, int64_t chunk) {
  if (t == 0) return true;
  const int64_t p = qpos[t], prev = qpos[t - 1];
  return qseq[t] != qseq[t - 1] || p != prev + 1 || window_start(p, chunk) != window_start(prev, chunk);
}

// tiles[0] = count, tiles[1 + i] = first entry of tile i, tiles[1 + count] = T. Each thread takes a
// contiguous range of entries: the last run start before it (a max-scan) gives each entry's offset
// in its run, the tile starts are counted, and a sum-scan places them.
__global__ void __launch_bounds__(kPlanThreads)
    plan_tiles_kernel(int32_t* __restrict__ tiles, const int32_t* __restrict__ qseq,
                      const int32_t* __restrict__ qpos, int64_t T, int64_t chunk, int tile_tokens) {
  __shared__ int s_warp[32];
  const int64_t per = (T + kPlanThreads - 1) / kPlanThreads;
  const int64_t a = std::min<int64_t>(T, threadIdx.x * per), b = std::min<int64_t>(T, a + per);
  int last = -1;
  for (int64_t t = a; t < b; ++t)
    if (run_breaks(qseq, qpos, t, chunk)) last = int(t);
  const int carry = block_exclusive_scan(last, -1, MaxOp{}, s_warp);  // >= 0 past entry 0
  int run = carry, count = 0;
  for (int64_t t = a; t < b; ++t) {
    if (run_breaks(qseq, qpos, t, chunk)) run = int(t);
    count += (int(t) - run) % tile_tokens == 0;
  }
  int idx = block_exclusive_scan(count, 0, AddOp{}, s_warp);
  run = carry;
  for (int64_t t = a; t < b; ++t) {
    if (run_breaks(qseq, qpos, t, chunk)) run = int(t);
    if ((int(t) - run) % tile_tokens == 0) tiles[1 + idx++] = int(t);
  }
  if (threadIdx.x == kPlanThreads - 1) {  // its idx is now the total
    tiles[0] = idx;
    tiles[1 + idx] = int(T);
  }
}

// ---- the attention kernel ----

// e4m3 x 16 -> bf16 x 16 (exact: every e4m3 value is a bf16 value), two 16-byte shared stores.
__device__ __forceinline__ void store_e4m3_as_bf16(uint16_t* dst, const uint4& src) {
  const uint32_t w[4] = {src.x, src.y, src.z, src.w};
  uint32_t r[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t word = w[i / 2] >> (16 * (i % 2));
    r[i] = uint32_t(f32_to_bf16(fp8e4m3_to_f32(uint8_t(word)))) |
           (uint32_t(f32_to_bf16(fp8e4m3_to_f32(uint8_t(word >> 8)))) << 16);
  }
  reinterpret_cast<uint4*>(dst)[0] = make_uint4(r[0], r[1], r[2], r[3]);
  reinterpret_cast<uint4*>(dst)[1] = make_uint4(r[4], r[5], r[6], r[7]);
}

// Keys [k0, k0 + kBN) of KV head g into stage buffers dK/dV ([kBN][D + 8]); keys past `hi` and
// keys whose page entry is bad are zeros (the latter recorded in *s_fault). Two threads per key
// row: one page-table lookup each (32-bit arithmetic: positions are int32), then alternate 16-byte
// chunks of the row (each warp instruction reads whole 32-byte sectors). bf16: cp.async (the
// caller commits); FP8: loaded, widened to bf16 and stored, with the rows' scales in sks/svs.
template <int D, bool kFp8>
__device__ __forceinline__ void load_kv(const PrefillArgs& a, uint16_t* dK, uint16_t* dV, float* sks,
                                        float* svs, int64_t k0, int64_t hi, const int32_t* table,
                                        int64_t g, int* s_fault) {
  constexpr int LD = D + 8;
  constexpr int kElems = kFp8 ? 16 : 8;  // cache elements per 16-byte chunk
  constexpr int kChunks = D / kElems;    // chunks per key row
  constexpr int kRowThreads = kThreads / kBN;
  static_assert(kThreads % kBN == 0 && kChunks % kRowThreads == 0, "threads per key row");
  const int j = threadIdx.x / kRowThreads, part = threadIdx.x % kRowThreads;
  const int64_t key = k0 + j;
  int64_t row = -1;  // the key's (slot, head) row of the cache
  if (key <= hi) {
    const int P = int(a.P), lp = int(key) / P;
    const int64_t entry = lp < a.max_pages ? int64_t(table[lp]) : -1;
    if (entry >= 0 && entry < a.num_pages) {
      row = (entry * P + (int(key) - lp * P)) * a.KV + g;
    } else if (part == 0) {
      atomicMin(s_fault, int(key));
    }
  }
  uint16_t* kd = dK + j * LD;
  uint16_t* vd = dV + j * LD;
  if constexpr (!kFp8) {
    const uint16_t* kc = static_cast<const uint16_t*>(a.kc) + (row >= 0 ? row * D : 0);
    const uint16_t* vc = static_cast<const uint16_t*>(a.vc) + (row >= 0 ? row * D : 0);
    const int bytes = row >= 0 ? 16 : 0;
#pragma unroll
    for (int ch = part; ch < kChunks; ch += kRowThreads) {
      cp_async_16(kd + ch * 8, kc + (row >= 0 ? ch * 8 : 0), bytes);
      cp_async_16(vd + ch * 8, vc + (row >= 0 ? ch * 8 : 0), bytes);
    }
  } else {
    const uint8_t* kc = static_cast<const uint8_t*>(a.kc) + (row >= 0 ? row * D : 0);
    const uint8_t* vc = static_cast<const uint8_t*>(a.vc) + (row >= 0 ? row * D : 0);
#pragma unroll
    for (int ch = part; ch < kChunks; ch += kRowThreads) {
      uint4 kq = make_uint4(0, 0, 0, 0), vq = kq;
      if (row >= 0) {
        kq = *reinterpret_cast<const uint4*>(kc + ch * 16);
        vq = *reinterpret_cast<const uint4*>(vc + ch * 16);
      }
      store_e4m3_as_bf16(kd + ch * 16, kq);
      store_e4m3_as_bf16(vd + ch * 16, vq);
    }
    if (part == 0) {
      sks[j] = row >= 0 ? a.ks[row] : 0.f;
      svs[j] = row >= 0 ? a.vs[row] : 0.f;
    }
  }
}

template <int D, bool kFp8>
__global__ void __launch_bounds__(kThreads) prefill_attention_kernel(const PrefillArgs a) {
  constexpr int LD = D + 8;         // padded row: ldmatrix's 8 row addresses hit distinct banks
  constexpr int kTile = kBN * LD;   // elements of one K or V stage
  constexpr int KS = D / 16;        // k-steps of Q K^T
  constexpr int NF = kBN / 8;       // 8-key n-tiles of S
  constexpr int OF = D / 8;         // 8-column n-tiles of O
  static_assert(kBM == kBN, "the Q staging area is one K stage");
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* sK = smem;              // [2][kBN][LD]
  uint16_t* sV = smem + 2 * kTile;  // [2][kBN][LD]
  uint16_t* sQ = sK + kTile;        // [kBM][LD], aliases K stage 1 (free until key tile 1 loads)
  __shared__ float s_temp[kBM];
  __shared__ float s_ks[2][kBN], s_vs[2][kBN];
  __shared__ int s_fault;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gq = lane / 4, tq = lane % 4;
  const int64_t g = blockIdx.y;
  const int R = int(a.R);
  const int n_tiles = a.tiles[0];
  for (int it = int(blockIdx.x); it < n_tiles; it += int(gridDim.x)) {
    const int tile = n_tiles - 1 - it;  // later tiles of a sequence see more keys: start them first
    const int64_t t0 = a.tiles[1 + tile];
    const int nq = a.tiles[2 + tile] - int(t0);
    const int rows = nq * R;
    const int64_t seq = a.qseq[t0], p0 = a.qpos[t0];
    if (seq < 0 || seq >= a.num_seqs || p0 < 0) {  // no window to read: NaN, as a fault
      for (int i = tid; i < rows * D; i += kThreads) {
        const int row = i / D;
        a.out[((t0 + row / R) * a.H + g * R + row % R) * D + i % D] = kBf16NaN;
      }
      continue;  // block-uniform; no shared memory touched
    }
    const int64_t lo = window_start(p0, a.chunk), hi = p0 + nq - 1;
    const int n_kt = int((hi - lo) / kBN) + 1;
    const int32_t* table = a.table + seq * a.max_pages;
    const bool tune = a.attn_scale > 0.f;
    if (tid == 0) s_fault = INT_MAX;
    if (tid < nq) s_temp[tid] = tune ? attention_temperature(p0 + tid, a.attn_scale, a.floor_scale) : 1.f;
    __syncthreads();
    load_kv<D, kFp8>(a, sK, sV, s_ks[0], s_vs[0], lo, hi, table, g, &s_fault);
    cp_async_commit();
    // Query rows: q' = bf16(q * temperature) as transformers (and the CPU) round it.
    for (int i = tid; i < kBM * D; i += kThreads) {
      const int row = i / D, e = i % D;
      uint16_t bits = 0;
      if (row < rows) {
        const int qi = row / R;
        bits = a.q[(t0 + qi) * a.q_s0 + (g * R + row % R) * a.q_s1 + e];
        if (tune) bits = f32_to_bf16(__fmul_rn(bf16_to_f32(bits), s_temp[qi]));
      }
      sQ[row * LD + e] = bits;
    }
    __syncthreads();
    uint32_t qf[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
      ldmatrix_x4(qf[kk], sQ + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);
    __syncthreads();  // sQ is K stage 1 again

    // This thread's two rows (gq and gq + 8 of the warp's 16) and their queries' positions;
    // padding rows take the last query's (their zero queries give finite, unused results).
    const int row_a = warp * 16 + gq, row_b = row_a + 8;
    const int64_t pos_a = p0 + std::min(row_a / R, nq - 1), pos_b = p0 + std::min(row_b / R, nq - 1);
    const bool active = warp * 16 < rows;  // warp-uniform
    float o[OF][4];
#pragma unroll
    for (int f = 0; f < OF; ++f) o[f][0] = o[f][1] = o[f][2] = o[f][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;  // l: this thread's columns

    for (int kt = 0; kt < n_kt; ++kt) {
      const int st = kt & 1;
      if (kt + 1 < n_kt) {
        load_kv<D, kFp8>(a, sK + (st ^ 1) * kTile, sV + (st ^ 1) * kTile, s_ks[st ^ 1], s_vs[st ^ 1],
                         lo + int64_t(kt + 1) * kBN, hi, table, g, &s_fault);
        cp_async_commit();
        cp_async_wait<1>();  // this tile's group has landed; the next one may be in flight
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      if (active) {
        const int64_t k0 = lo + int64_t(kt) * kBN;
        const uint16_t* Ks = sK + st * kTile;
        const uint16_t* Vs = sV + st * kTile;
        float s[NF][4];
#pragma unroll
        for (int f = 0; f < NF; ++f) s[f][0] = s[f][1] = s[f][2] = s[f][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KS; ++kk) {
#pragma unroll
          for (int f2 = 0; f2 < NF / 2; ++f2) {
            uint32_t b[4];  // n-tiles 2 f2 and 2 f2 + 1, k-step kk
            ldmatrix_x4(b, Ks + (f2 * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
            mma_bf16_16816(s[2 * f2], qf[kk], b[0], b[1]);
            mma_bf16_16816(s[2 * f2 + 1], qf[kk], b[2], b[3]);
          }
        }
        // Scores in log2 units; keys past a row's position are masked (only tiles reaching past
        // the first query's position can hold such keys).
        const bool mask = k0 + kBN - 1 > p0;
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int f = 0; f < NF; ++f) {
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const int col = f * 8 + 2 * tq + (c & 1);
            float x = kFp8 ? s[f][c] * s_ks[st][col] * a.scale_log2 : s[f][c] * a.scale_log2;
            if (mask && k0 + col > (c < 2 ? pos_a : pos_b)) x = -INFINITY;
            s[f][c] = x;
            if (c < 2) mx_a = fmaxf(mx_a, x);
            else mx_b = fmaxf(mx_b, x);
          }
        }
        // Row max over the quad that shares the row. Each row sees the window's first key in the
        // first tile, so the running max is finite from then on.
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
        const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
        const float corr_a = exp2f(m_a - mn_a), corr_b = exp2f(m_b - mn_b);  // 0 on the first tile
        m_a = mn_a;
        m_b = mn_b;
        float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
        for (int f = 0; f < NF; ++f) {
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const float p = exp2f(s[f][c] - (c < 2 ? mn_a : mn_b));
            if (c < 2) sum_a += p;
            else sum_b += p;
            s[f][c] = kFp8 ? p * s_vs[st][f * 8 + 2 * tq + (c & 1)] : p;
          }
        }
        l_a = l_a * corr_a + sum_a;
        l_b = l_b * corr_b + sum_b;
#pragma unroll
        for (int f = 0; f < OF; ++f) {
          o[f][0] *= corr_a;
          o[f][1] *= corr_a;
          o[f][2] *= corr_b;
          o[f][3] *= corr_b;
        }
        // O += P V: P's C fragments of n-tiles 2 kk and 2 kk + 1 are the A fragment of k-step kk.
#pragma unroll
        for (int kk = 0; kk < kBN / 16; ++kk) {
          const uint32_t pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                  pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                  pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
          for (int f2 = 0; f2 < D / 16; ++f2) {
            uint32_t b[4];  // keys kk*16.., columns f2*16..: n-tiles 2 f2 and 2 f2 + 1
            ldmatrix_x4_trans(b, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + f2 * 16 + (lane >> 4) * 8);
            mma_bf16_16816(o[2 * f2], pa, b[0], b[1]);
            mma_bf16_16816(o[2 * f2 + 1], pa, b[2], b[3]);
          }
        }
      }
      __syncthreads();  // the stage is free for the load two tiles on
    }

    const int fault = s_fault;  // every atomicMin happened before the loop's barriers
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = half == 0 ? row_a : row_b;
      if (row >= rows) continue;
      const int qi = row / R;
      const bool bad = p0 + qi >= fault;
      const float l = half == 0 ? l_a : l_b;
      uint16_t* dst = a.out + ((t0 + qi) * a.H + g * R + row % R) * D;
#pragma unroll
      for (int f = 0; f < OF; ++f) {
        const int col = f * 8 + 2 * tq;
        dst[col] = bad ? kBf16NaN : f32_to_bf16(o[f][2 * half] / l);
        dst[col + 1] = bad ? kBf16NaN : f32_to_bf16(o[f][2 * half + 1] / l);
      }
    }
    __syncthreads();  // s_fault and s_temp are reset by the next tile
  }
}

template <int D, bool kFp8>
void launch(cudaStream_t s, const PrefillArgs& a, dim3 grid) {
  constexpr int bytes = 4 * kBN * (D + 8) * int(sizeof(uint16_t));
  auto* kernel = prefill_attention_kernel<D, kFp8>;
  LLAMA4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  kernel<<<grid, kThreads, bytes, s>>>(a);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace

void paged_prefill_attention(const Context& ctx, const TensorView& out, const TensorView& q,
                             const TensorView& k_cache, const TensorView& v_cache,
                             const TensorView& page_table, const TensorView& query_seq,
                             const TensorView& query_pos, const ops::AttentionParams& params,
                             const ops::KVScales& scales) {
  const int64_t T_ = q.size(0), H = q.size(1), d = q.size(2), KV = k_cache.size(2);
  const int64_t S = page_table.size(0), R = H / KV, tile_tokens = ops::prefill_tile_tokens(R);
  LLAMA4_CHECK_ARG(T_ <= 0x7fffffff - 2, "paged_attention: ", T_, " queries exceed the prefill kernel's int32 tiles");
  const OpScope scope(ctx);
  Tensor tiles = ctx.empty({T_ + 2}, DType::I32);
  plan_tiles_kernel<<<1, kPlanThreads, 0, scope.stream>>>(tiles.ptr<int32_t>(), query_seq.ptr<int32_t>(),
                                                          query_pos.ptr<int32_t>(), T_, params.chunk_size,
                                                          int(tile_tokens));
  LLAMA4_CUDA_CHECK_LAUNCH();
  PrefillArgs a{};
  a.q = static_cast<const uint16_t*>(q.data);
  a.q_s0 = q.stride(0);
  a.q_s1 = q.stride(1);
  a.out = static_cast<uint16_t*>(out.data);
  a.kc = k_cache.data;
  a.vc = v_cache.data;
  a.ks = scales.k.ptr<float>();
  a.vs = scales.v.ptr<float>();
  a.table = page_table.ptr<int32_t>();
  a.max_pages = page_table.size(1);
  a.num_seqs = S;
  a.qseq = query_seq.ptr<int32_t>();
  a.qpos = query_pos.ptr<int32_t>();
  a.tiles = tiles.ptr<int32_t>();
  a.H = H, a.KV = KV, a.R = R, a.P = k_cache.size(1), a.num_pages = k_cache.size(0);
  a.scale_log2 = params.scale * 1.4426950408889634f;
  a.chunk = params.chunk_size;
  a.attn_scale = params.attn_scale;
  a.floor_scale = params.floor_scale;
  // Enough blocks for the tiles of the engine's layout (each sequence's queries consecutive): the
  // full tiles plus one partial tile per sequence; more tiles (windows crossing chunk boundaries,
  // scattered queries) are strided over by the same blocks.
  const int64_t slots = std::clamp<int64_t>(ceil_div(T_, tile_tokens) + S, 1, std::min<int64_t>(T_, 0x7fffffff));
  const dim3 grid{unsigned(slots), unsigned(KV), 1u};
  const bool fp8 = k_cache.dtype == DType::F8E4M3;
  if (d == 64) {
    fp8 ? launch<64, true>(scope.stream, a, grid) : launch<64, false>(scope.stream, a, grid);
  } else {
    fp8 ? launch<128, true>(scope.stream, a, grid) : launch<128, false>(scope.stream, a, grid);
  }
  // `tiles` goes back to the pool ordered after the kernels queued on the stream.
}

}  // namespace llama4::cuda
