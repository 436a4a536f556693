// CUDA paged attention and cache writes (contracts: cuda/paged_attention.h, llama4/ops.h).
//
// paged_attention: one block per (query, KV head, KV split), 4 warps. The R = H / KV query heads
// of the KV head share every K/V row the block reads (GQA). The block's keys (its split of the
// query's window) are dealt to the warps round-robin; in a warp each lane holds DPL = d / 32
// elements of the query, K and V rows, a score is a warp-wide shuffle reduction, and each warp
// keeps an online softmax state (running max m, sum l, unnormalized accumulator) per query head.
// The warps' states are merged through shared memory. With several splits (flash-decoding: few
// queries over long windows, so that every SM has work) each block writes its merged state to a
// fp32 workspace and a second kernel combines the splits. The split count is chosen on the host
// from shapes alone (T, KV, the page table's width, the chunk size): nothing is read back.
// Scores, softmax and the V sums are fp32; the output is rounded once. The temperature of NoPE
// layers comes from llama4/mathfn.h, the same bits as the CPU. Summation order differs from the
// CPU's, so results agree to fp32 rounding.
// FP8 caches (e4m3 + a float32 scale per token and KV head): K/V elements are read as
// __fmul_rn(float(e4m3), scale), the CPU's single product, so both read the same values; the
// writes quantize each (token, head) row in one warp with fp8_rowwise.cuh's rule (the CPU's
// quantize_fp8_row), bit for bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/elem.cuh"
#include "cuda/fp8_rowwise.cuh"
#include "cuda/paged_attention.h"
#include "cuda/reduce.cuh"
#include "llama4/mathfn.h"

namespace llama4::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxR = int(kAttentionMaxGroup);
constexpr int kMaxD = int(kAttentionMaxHeadDim);
constexpr int64_t kTargetBlocks = 264;     // ~2 per SM on a 132-SM Hopper
constexpr int64_t kMinKeysPerSplit = 256;  // below this a split costs more to merge than it saves
constexpr int64_t kMaxSplits = 64;

struct AttnArgs {
  const void* q;
  int64_t q_s0, q_s1;  // q strides (elements) of the token and head dims; the last dim is dense
  const void* kc;
  const void* vc;
  const float* ks;  // FP8 caches: [num_pages, P, KV] scales (else null)
  const float* vs;
  const int32_t* table;
  int64_t max_pages;
  const int32_t* qseq;
  const int32_t* qpos;
  int64_t H, KV, R, d, P, num_pages;
  int splits;
  int64_t split_len;
  float scale;
  int64_t chunk;
  float attn_scale, floor_scale;
};

constexpr float kNegInf = -INFINITY;

// One cache element in fp32: the element itself, or float(e4m3) * its row's scale.
template <typename T, typename C>
__device__ __forceinline__ float cache_load(const C* c, int64_t i, float scale) {
  if constexpr (std::is_same_v<C, uint8_t>) {
    return __fmul_rn(fp8e4m3_to_f32(c[i]), scale);
  } else {
    return DevElem<T>::load(c[i]);
  }
}

// T: q/out's type; C: the cache's (T, or uint8_t for e4m3 with per-(token, head) scales).
template <typename T, typename C, int DPL>
__global__ void __launch_bounds__(kThreads)
    attention_kernel(T* __restrict__ out, float* __restrict__ part, const AttnArgs a) {
  using E = DevElem<T>;
  __shared__ float s_m[kWarps][kMaxR], s_l[kWarps][kMaxR];
  __shared__ float s_acc[kWarps][kMaxR][kMaxD];
  const int64_t t = blockIdx.x;
  const int64_t g = blockIdx.y;
  const int split = int(blockIdx.z);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t p = a.qpos[t], seq = a.qseq[t];
  const int64_t lo = a.chunk > 0 ? p / a.chunk * a.chunk : 0;
  const int64_t k_first = a.splits == 1 ? lo : lo + split * a.split_len;
  // The last split runs to p, so a window reaching past the table is still seen (and faults).
  const int64_t k_last =
      split == a.splits - 1 ? p : std::min(p, k_first + a.split_len - 1);
  const int R = int(a.R);
  const int64_t d = a.d;

  // Queries of the R heads, scaled by the temperature and rounded to T as transformers does.
  const float temp = a.attn_scale > 0.f ? attention_temperature(p, a.attn_scale, a.floor_scale) : 1.f;
  float qf[kMaxR][DPL], acc[kMaxR][DPL], m[kMaxR], l[kMaxR];
  const T* qt = static_cast<const T*>(a.q) + t * a.q_s0;
#pragma unroll
  for (int r = 0; r < kMaxR; ++r) {
    m[r] = kNegInf;
    l[r] = 0.f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int64_t e = lane + 32 * i;
      float v = 0.f;
      if (r < R && e < d) {
        v = E::load(qt[(g * R + r) * a.q_s1 + e]);
        if (a.attn_scale > 0.f) v = E::round(__fmul_rn(v, temp));
      }
      qf[r][i] = v;
      acc[r][i] = 0.f;
    }
  }

  const C* kc = static_cast<const C*>(a.kc);
  const C* vc = static_cast<const C*>(a.vc);
  constexpr bool kFp8 = std::is_same_v<C, uint8_t>;
  const int32_t* row_table = a.table + seq * a.max_pages;
  bool fault = false;
  for (int64_t j = k_first + warp; j <= k_last; j += kWarps) {
    const int64_t lp = j / a.P;
    const int64_t entry = lp < a.max_pages ? int64_t(row_table[lp]) : -1;
    if (entry < 0 || entry >= a.num_pages) {  // uniform over the warp
      fault = true;
      break;
    }
    const int64_t srow = (entry * a.P + j % a.P) * a.KV + g, row = srow * d;
    const float k_scale = kFp8 ? a.ks[srow] : 1.f, v_scale = kFp8 ? a.vs[srow] : 1.f;
    float kf[DPL], vf[DPL];
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int64_t e = lane + 32 * i;
      kf[i] = e < d ? cache_load<T>(kc, row + e, k_scale) : 0.f;
      vf[i] = e < d ? cache_load<T>(vc, row + e, v_scale) : 0.f;
    }
#pragma unroll
    for (int r = 0; r < kMaxR; ++r) {
      if (r >= R) break;
      float dot = 0.f;
#pragma unroll
      for (int i = 0; i < DPL; ++i) dot = fmaf(qf[r][i], kf[i], dot);
      const float s = warp_reduce(dot, SumOp{}) * a.scale;
      const float mn = fmaxf(m[r], s);
      const float corr = expf(m[r] - mn);  // 0 on the first key (m = -inf)
      const float w = expf(s - mn);
      l[r] = l[r] * corr + w;
#pragma unroll
      for (int i = 0; i < DPL; ++i) acc[r][i] = fmaf(w, vf[i], acc[r][i] * corr);
      m[r] = mn;
    }
  }

  // Merge the warps' states.
#pragma unroll
  for (int r = 0; r < kMaxR; ++r) {
    if (r >= R) break;
    if (lane == 0) {
      s_m[warp][r] = m[r];
      s_l[warp][r] = l[r];
    }
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int64_t e = lane + 32 * i;
      if (e < d) s_acc[warp][r][e] = acc[r][i];
    }
  }
  const bool any_fault = __syncthreads_or(fault) != 0;  // also the barrier for the stores above
  for (int64_t idx = threadIdx.x; idx < int64_t(R) * d; idx += kThreads) {
    const int r = int(idx / d);
    const int64_t e = idx % d;
    float M = kNegInf;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w][r]);
    float L = 0.f, A = 0.f;
    if (M != kNegInf) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = expf(s_m[w][r] - M);
        L += s_l[w][r] * f;
        A += s_acc[w][r][e] * f;
      }
    }
    const int64_t h = g * R + r;
    if (a.splits == 1) {
      out[(t * a.H + h) * d + e] = E::store(any_fault ? NAN : A / L);
    } else {
      float* pp = part + ((t * a.H + h) * a.splits + split) * (d + 2);
      pp[e] = A;
      if (e == 0) {
        pp[d] = any_fault ? NAN : M;
        pp[d + 1] = L;
      }
    }
  }
}

// out[t, h] = the splits' states of (t, h) merged; a NaN max (a page fault) gives NaN.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    combine_kernel(T* __restrict__ out, const float* __restrict__ part, int64_t d, int splits) {
  const int64_t th = blockIdx.x;
  const float* pp = part + th * splits * (d + 2);
  float M = kNegInf;
  bool bad = false;
  for (int s = 0; s < splits; ++s) {
    const float ms = pp[s * (d + 2) + d];
    bad |= ms != ms;
    M = fmaxf(M, ms);
  }
  for (int64_t e = threadIdx.x; e < d; e += kThreads) {
    float L = 0.f, A = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float ms = pp[s * (d + 2) + d];
      if (ms == kNegInf) continue;  // an empty split
      const float f = expf(ms - M);
      L += pp[s * (d + 2) + d + 1] * f;
      A += pp[s * (d + 2) + e] * f;
    }
    out[th * d + e] = DevElem<T>::store(bad ? NAN : A / L);
  }
}

template <typename T, typename C>
void launch_attention(cudaStream_t s, const Context& ctx, const TensorView& out, AttnArgs a,
                      int64_t T_) {
  Tensor part;
  if (a.splits > 1) {
    part = ctx.empty({T_, a.H, int64_t(a.splits), a.d + 2}, DType::F32);
  }
  const dim3 grid(unsigned(T_), unsigned(a.KV), unsigned(a.splits));
  float* pp = a.splits > 1 ? part.ptr<float>() : nullptr;
  if (a.d <= 32) {
    attention_kernel<T, C, 1><<<grid, kThreads, 0, s>>>(out.ptr<T>(), pp, a);
  } else if (a.d <= 64) {
    attention_kernel<T, C, 2><<<grid, kThreads, 0, s>>>(out.ptr<T>(), pp, a);
  } else if (a.d <= 128) {
    attention_kernel<T, C, 4><<<grid, kThreads, 0, s>>>(out.ptr<T>(), pp, a);
  } else {
    attention_kernel<T, C, 8><<<grid, kThreads, 0, s>>>(out.ptr<T>(), pp, a);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
  if (a.splits > 1) {
    combine_kernel<T><<<unsigned(T_ * a.H), kThreads, 0, s>>>(out.ptr<T>(), pp, a.d, a.splits);
    LLAMA4_CUDA_CHECK_LAUNCH();
  }
  // `part` goes back to the pool ordered after the kernels queued on s.
}

template <typename T>
void launch_attention_same(cudaStream_t s, const Context& ctx, const TensorView& out, AttnArgs a, int64_t T_) {
  launch_attention<T, T>(s, ctx, out, a, T_);
}
template <typename T>
void launch_attention_fp8(cudaStream_t s, const Context& ctx, const TensorView& out, AttnArgs a, int64_t T_) {
  launch_attention<T, uint8_t>(s, ctx, out, a, T_);
}

// FP8: one warp per (token, head) row: the row's NaN-propagating amax, then fp8_rowwise.cuh's
// quantization; lane 0 writes the scale.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    cache_write_fp8_kernel(uint8_t* __restrict__ kc, uint8_t* __restrict__ vc, float* __restrict__ ks,
                           float* __restrict__ vs, const T* __restrict__ k, const T* __restrict__ v,
                           const int32_t* __restrict__ slots, int64_t T_, int64_t KV, int64_t d,
                           int64_t k_s0, int64_t k_s1, int64_t v_s0, int64_t v_s1, int64_t num_slots) {
  using E = DevElem<T>;
  constexpr int kRowsPerBlock = kBlockThreads / 32;
  const int lane = threadIdx.x % 32;
  for (int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32; r < T_ * KV;
       r += int64_t(gridDim.x) * kRowsPerBlock) {  // whole warps take a row: the loop is warp-uniform
    const int64_t t = r / KV, g = r % KV;
    const int64_t slot = slots[t];
    if (slot < 0 || slot >= num_slots) continue;
    const int64_t dst = slot * KV + g;
    for (int which = 0; which < 2; ++which) {
      const T* x = which == 0 ? k + t * k_s0 + g * k_s1 : v + t * v_s0 + g * v_s1;
      uint8_t* q = (which == 0 ? kc : vc) + dst * d;
      float amax = 0.f;
      for (int64_t e = lane; e < d; e += 32) amax = MaxNanOp{}(amax, fabsf(E::load(x[e])));
      amax = warp_reduce(amax, MaxNanOp{});
      const float inv = fp8_inverse_scale(amax, 0.f);
      for (int64_t e = lane; e < d; e += 32) q[e] = fp8_quantize(E::load(x[e]), inv).bits;
      if (lane == 0) (which == 0 ? ks : vs)[dst] = __fdiv_rn(1.0f, inv);
    }
  }
}

template <typename T>
void launch_cache_write_fp8(cudaStream_t s, const TensorView& k_cache, const TensorView& v_cache,
                            const ops::KVScales& scales, const TensorView& k, const TensorView& v,
                            const TensorView& slots) {
  const int64_t T_ = k.size(0), KV = k.size(1), d = k.size(2);
  const int64_t num_slots = k_cache.size(0) * k_cache.size(1);
  cache_write_fp8_kernel<T><<<grid_blocks(T_ * KV, kBlockThreads / 32), kBlockThreads, 0, s>>>(
      k_cache.ptr<uint8_t>(), v_cache.ptr<uint8_t>(), scales.k.ptr<float>(), scales.v.ptr<float>(), k.ptr<T>(),
      v.ptr<T>(), slots.ptr<int32_t>(), T_, KV, d, k.stride(0), k.stride(1), v.stride(0), v.stride(1), num_slots);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    cache_write_kernel(T* __restrict__ kc, T* __restrict__ vc, const T* __restrict__ k,
                       const T* __restrict__ v, const int32_t* __restrict__ slots, int64_t T_,
                       int64_t KV, int64_t d, int64_t k_s0, int64_t k_s1, int64_t v_s0,
                       int64_t v_s1, int64_t num_slots) {
  const int64_t n = T_ * KV * d;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / (KV * d), g = (i / d) % KV, e = i % d;
    const int64_t slot = slots[t];
    if (slot < 0 || slot >= num_slots) continue;
    const int64_t dst = (slot * KV + g) * d + e;
    kc[dst] = k[t * k_s0 + g * k_s1 + e];
    vc[dst] = v[t * v_s0 + g * v_s1 + e];
  }
}

template <typename T>
void launch_cache_write(cudaStream_t s, const TensorView& k_cache, const TensorView& v_cache,
                        const TensorView& k, const TensorView& v, const TensorView& slots) {
  const int64_t T_ = k.size(0), KV = k.size(1), d = k.size(2);
  const int64_t num_slots = k_cache.size(0) * k_cache.size(1);
  cache_write_kernel<T><<<grid_blocks(T_ * KV * d, kBlockThreads), kBlockThreads, 0, s>>>(
      k_cache.ptr<T>(), v_cache.ptr<T>(), k.ptr<T>(), v.ptr<T>(), slots.ptr<int32_t>(), T_, KV, d,
      k.stride(0), k.stride(1), v.stride(0), v.stride(1), num_slots);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

// Splits per window: enough blocks to fill the GPU, at least kMinKeysPerSplit keys each.
int choose_splits(int64_t T_, int64_t KV, int64_t max_keys, int forced) {
  if (forced > 0) return int(std::clamp<int64_t>(forced, 1, std::min(kMaxSplits, max_keys)));
  const int64_t blocks = T_ * KV;
  if (blocks >= kTargetBlocks) return 1;
  const int64_t want = ceil_div(kTargetBlocks, blocks);
  return int(std::clamp<int64_t>(std::min(want, max_keys / kMinKeysPerSplit), 1, kMaxSplits));
}

}  // namespace

void cache_write(const Context& ctx, const TensorView& k_cache, const TensorView& v_cache,
                 const TensorView& k, const TensorView& v, const TensorView& slots,
                 const ops::KVScales& scales) {
  const OpScope scope(ctx);
  if (k_cache.dtype == DType::F8E4M3) {
    LLAMA4_CUDA_DISPATCH_ACT(k.dtype, "cache_write", launch_cache_write_fp8, scope.stream, k_cache, v_cache,
                             scales, k, v, slots);
    return;
  }
  LLAMA4_CUDA_DISPATCH_ACT(k_cache.dtype, "cache_write", launch_cache_write, scope.stream, k_cache,
                           v_cache, k, v, slots);
}

void paged_attention(const Context& ctx, const TensorView& out, const TensorView& q,
                     const TensorView& k_cache, const TensorView& v_cache,
                     const TensorView& page_table, const TensorView& query_seq,
                     const TensorView& query_pos, const ops::AttentionParams& params,
                     const ops::KVScales& scales) {
  const int64_t T_ = q.size(0), H = q.size(1), d = q.size(2), KV = k_cache.size(2);
  const int64_t P = k_cache.size(1);
  LLAMA4_CHECK_ARG(H / KV <= kAttentionMaxGroup, "paged_attention: the CUDA kernel supports up to ",
                   kAttentionMaxGroup, " query heads per KV head, got ", H / KV);
  LLAMA4_CHECK_ARG(d <= kAttentionMaxHeadDim, "paged_attention: the CUDA kernel supports head_dim <= ",
                   kAttentionMaxHeadDim, ", got ", d);
  LLAMA4_CHECK_ARG(T_ <= 0x7fffffff && KV <= 65535, "paged_attention: ", T_, " queries x ", KV,
                   " KV heads exceed the CUDA grid");
  const OpScope scope(ctx);
  AttnArgs a{};
  a.q = q.data;
  a.q_s0 = q.stride(0);
  a.q_s1 = q.stride(1);
  a.kc = k_cache.data;
  a.vc = v_cache.data;
  a.ks = scales.k.ptr<float>();
  a.vs = scales.v.ptr<float>();
  a.table = page_table.ptr<int32_t>();
  a.max_pages = page_table.size(1);
  a.qseq = query_seq.ptr<int32_t>();
  a.qpos = query_pos.ptr<int32_t>();
  a.H = H, a.KV = KV, a.R = H / KV, a.d = d, a.P = P, a.num_pages = k_cache.size(0);
  const int64_t table_keys = std::max<int64_t>(1, a.max_pages * P);
  const int64_t max_keys = params.chunk_size > 0 ? std::min(params.chunk_size, table_keys) : table_keys;
  a.splits = choose_splits(T_, KV, max_keys, params.kv_splits);
  a.split_len = ceil_div(max_keys, a.splits);
  a.scale = params.scale;
  a.chunk = params.chunk_size;
  a.attn_scale = params.attn_scale;
  a.floor_scale = params.floor_scale;
  if (k_cache.dtype == DType::F8E4M3) {
    LLAMA4_CUDA_DISPATCH_ACT(q.dtype, "paged_attention", launch_attention_fp8, scope.stream, ctx, out, a, T_);
  } else {
    LLAMA4_CUDA_DISPATCH_ACT(q.dtype, "paged_attention", launch_attention_same, scope.stream, ctx, out, a, T_);
  }
}

}  // namespace llama4::cuda
