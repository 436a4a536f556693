// The INT4 grouped GEMM's own CUDA kernels (cuda/moe_int4_kernels.h): the decode kernel ("Gemv",
// llama4/moe_int4_config.h) and the scale transpose the CUTLASS kernel needs.
//
// Gemv: decode is weight-bandwidth bound (a few token rows per expert), so the kernel streams every
// busy expert's int4 weights once per row tile (1, 2 or 4 rows, from the mean rows per busy expert;
// a smaller tile needs fewer registers, so more warps stream) with 16-byte loads and does the
// arithmetic in registers:
//   - a warp owns 4 output channels; lane l takes the 32-value K slices l, l + 32, ... of each, so a
//     warp's loads of one channel are 512 contiguous bytes;
//   - a nibble becomes an exact float without a conversion instruction: (b ^ 8) placed in the
//     mantissa of 2^23 is 2^23 + q + 8, and one subtraction leaves q;
//   - each slice's 32 products (exact in fp32) are summed in fp32 for each row of the tile, then
//     multiplied by the slice's group scale into the fp32 accumulator (the op's per-group formula,
//     up to fp32 summation order); lanes are summed by shuffles and the result rounded once to bf16;
//   - the 4 channels share each x load (x comes from L1/L2; the weights stream past with
//     evict-first loads).
// The expert offsets stay on the device: each block lists the non-empty experts (one read of the
// offsets, a warp ballot scan) and walks the work items (expert, 32 channels, 16 rows) with a grid
// stride, so the grid size depends on the GPU only and empty experts cost nothing.
#include <cuda_runtime.h>

#include <atomic>

#include "cuda/common.cuh"
#include "cuda/moe_int4_kernels.h"
#include "llama4/moe_int4_config.h"
#include "llama4/numeric.h"

namespace llama4::cuda::int4 {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kChannels = 4;               // output channels per warp
constexpr int kRowsPerItem = 16;           // token rows per work item (later passes hit L2)
constexpr int kSlab = kWarps * kChannels;  // output channels per work item
constexpr int kMaxExperts = int(kMoeInt4CudaMaxExperts);

// The non-empty experts of a call, listed by every block in shared memory.
struct ExpertList {
  int32_t off[kMaxExperts + 1];
  int32_t expert[kMaxExperts];
  int32_t r0[kMaxExperts];
  int32_t r1[kMaxExperts];
  int64_t start[kMaxExperts + 1];  // first work item of each listed expert; start[count] = total
  int count;
};

__device__ __forceinline__ int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

__device__ void list_experts(const GroupedInt4& p, int slabs, ExpertList& L) {
  for (int i = threadIdx.x; i <= p.experts; i += blockDim.x) L.off[i] = p.expert_offsets[i];
  __syncthreads();
  if (threadIdx.x < 32) {
    const int lane = int(threadIdx.x);
    int count = 0;
    int64_t items = 0;
    for (int e0 = 0; e0 < p.experts; e0 += 32) {
      const int e = e0 + lane;
      int64_t lo = 0, hi = 0;
      if (e < p.experts) {
        lo = clamp64(L.off[e], 0, p.rows);
        hi = clamp64(L.off[e + 1], lo, p.rows);
      }
      const int64_t mine = int64_t(slabs) * ((hi - lo + kRowsPerItem - 1) / kRowsPerItem);
      const unsigned busy = __ballot_sync(0xFFFFFFFFu, mine > 0);
      int64_t incl = mine;  // inclusive scan of the items over the lanes
      for (int d = 1; d < 32; d <<= 1) {
        const int64_t t = __shfl_up_sync(0xFFFFFFFFu, incl, d);
        if (lane >= d) incl += t;
      }
      if (mine > 0) {
        const int pos = count + __popc(busy & ((1u << lane) - 1u));
        L.expert[pos] = e;
        L.r0[pos] = int32_t(lo);
        L.r1[pos] = int32_t(hi);
        L.start[pos] = items + incl - mine;
      }
      count += __popc(busy);
      items += __shfl_sync(0xFFFFFFFFu, incl, 31);
    }
    if (lane == 0) {
      L.count = count;
      L.start[count] = items;
    }
  }
  __syncthreads();
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}
// Nibble v of a word already XORed with 0x88888888 (two's complement b -> b ^ 8 = q + 8), as float q.
__device__ __forceinline__ float nibble(uint32_t biased, int v) {
  return __uint_as_float(((biased >> (4 * v)) & 0xFu) | 0x4B000000u) - 8388616.0f;  // 2^23 + 8
}

// Rows [row0, row0 + nr) (nr <= kRowTile) x channels [n0, n0 + 4) of expert e, by one warp.
template <int kRowTile>
__device__ void warp_tile(const GroupedInt4& p, int e, int n0, int64_t row0, int nr, int lane) {
  const int64_t row_bytes = p.k / 2;
  const int groups = p.k / p.group;
  const int chunks = p.k / 32;
  const int nch = min(kChannels, p.n - n0);
  const uint8_t* w = p.w + (int64_t(e) * p.n + n0) * row_bytes;
  const uint16_t* s = static_cast<const uint16_t*>(p.w_scale) + (int64_t(e) * p.n + n0) * groups;
  const uint4* x = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p.x) + row0 * p.k);
  const int64_t x_row = p.k / 8;  // uint4 per row of x

  float acc[kRowTile][kChannels];
#pragma unroll
  for (int r = 0; r < kRowTile; ++r)
#pragma unroll
    for (int j = 0; j < kChannels; ++j) acc[r][j] = 0.f;

  for (int c = lane; c < chunks; c += 32) {
    uint4 wv[kChannels];
#pragma unroll
    for (int j = 0; j < kChannels; ++j)  // absent channels: zero nibbles, i.e. q = 0
      wv[j] = j < nch ? __ldcs(reinterpret_cast<const uint4*>(w + j * row_bytes) + c) : make_uint4(0, 0, 0, 0);
    float part[kRowTile][kChannels];
#pragma unroll
    for (int r = 0; r < kRowTile; ++r)
#pragma unroll
      for (int j = 0; j < kChannels; ++j) part[r][j] = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // word i of the slice: values 8i .. 8i + 7
      uint4 xv[kRowTile];
#pragma unroll
      for (int r = 0; r < kRowTile; ++r)
        xv[r] = r < nr ? __ldg(x + r * x_row + c * 4 + i) : make_uint4(0, 0, 0, 0);
      uint32_t wb[kChannels];
#pragma unroll
      for (int j = 0; j < kChannels; ++j) wb[j] = word(wv[j], i) ^ 0x88888888u;
#pragma unroll
      for (int v = 0; v < 8; ++v) {
        float xf[kRowTile];
#pragma unroll
        for (int r = 0; r < kRowTile; ++r) {
          const uint32_t xw = word(xv[r], v / 2);
          xf[r] = __uint_as_float((v & 1) ? (xw & 0xFFFF0000u) : (xw << 16));
        }
#pragma unroll
        for (int j = 0; j < kChannels; ++j) {
          const float q = nibble(wb[j], v);
#pragma unroll
          for (int r = 0; r < kRowTile; ++r) part[r][j] = fmaf(xf[r], q, part[r][j]);
        }
      }
    }
    const int g = (c * 32) / p.group;
#pragma unroll
    for (int j = 0; j < kChannels; ++j) {
      const float sc = j < nch ? bf16_to_f32(s[int64_t(j) * groups + g]) : 0.f;
#pragma unroll
      for (int r = 0; r < kRowTile; ++r) acc[r][j] = fmaf(part[r][j], sc, acc[r][j]);
    }
  }

  uint16_t* out = static_cast<uint16_t*>(p.out);
#pragma unroll
  for (int r = 0; r < kRowTile; ++r)
#pragma unroll
    for (int j = 0; j < kChannels; ++j) {
      float v = acc[r][j];
#pragma unroll
      for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, d);
      if (lane == r * kChannels + j && r < nr && j < nch) out[(row0 + r) * p.n + n0 + j] = f32_to_bf16(v);
    }
}

// kRowTile: token rows per pass over a warp's weights (registers: kRowTile x 4 sums and x words).
template <int kRowTile>
__global__ void __launch_bounds__(kThreads, kRowTile == 4 ? 1 : 2) grouped_gemv_kernel(GroupedInt4 p) {
  __shared__ ExpertList L;
  const int slabs = (p.n + kSlab - 1) / kSlab;
  list_experts(p, slabs, L);
  const int warp = int(threadIdx.x / 32), lane = int(threadIdx.x % 32);
  const int64_t items = L.start[L.count];
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    int a = 0, b = L.count - 1;  // the last listed expert whose first item is <= item
    while (a < b) {
      const int mid = (a + b + 1) / 2;
      if (L.start[mid] <= item) a = mid;
      else b = mid - 1;
    }
    const int64_t local = item - L.start[a];
    const int n0 = int(local % slabs) * kSlab + warp * kChannels;
    if (n0 >= p.n) continue;
    const int64_t row_begin = L.r0[a] + (local / slabs) * kRowsPerItem;
    const int64_t row_end = row_begin + kRowsPerItem < L.r1[a] ? row_begin + kRowsPerItem : L.r1[a];
    for (int64_t r = row_begin; r < row_end; r += kRowTile)
      warp_tile<kRowTile>(p, L.expert[a], n0, r, int(row_end - r < kRowTile ? row_end - r : kRowTile), lane);
  }
}

__global__ void transpose_scales_kernel(GroupedInt4 p, uint16_t* st) {
  const int e = int(blockIdx.z);
  const int64_t lo = clamp64(p.expert_offsets[e], 0, p.rows);
  const int64_t hi = clamp64(p.expert_offsets[e + 1], lo, p.rows);
  if (hi <= lo) return;  // CUTLASS reads no scales of an expert without rows
  __shared__ uint16_t tile[32][33];
  const int groups = p.k / p.group;
  const uint16_t* s = static_cast<const uint16_t*>(p.w_scale) + int64_t(e) * p.n * groups;
  uint16_t* d = st + int64_t(e) * groups * p.n;
  const int n0 = int(blockIdx.x) * 32, g0 = int(blockIdx.y) * 32;
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  for (int i = ty; i < 32; i += 8) {
    const int n = n0 + i, g = g0 + tx;
    if (n < p.n && g < groups) tile[i][tx] = s[int64_t(n) * groups + g];
  }
  __syncthreads();
  for (int i = ty; i < 32; i += 8) {
    const int g = g0 + i, n = n0 + tx;
    if (n < p.n && g < groups) d[int64_t(g) * p.n + n] = tile[tx][i];
  }
}

// Resident blocks per SM of a Gemv kernel (a property of the binary; computed once per process).
template <int kRowTile>
int gemv_blocks_per_sm() {
  static std::atomic<int> cached{0};
  int v = cached.load(std::memory_order_relaxed);
  if (v == 0) {
    LLAMA4_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v, grouped_gemv_kernel<kRowTile>,
                                                                    kThreads, 0));
    v = v < 1 ? 1 : v;
    cached.store(v, std::memory_order_relaxed);
  }
  return v;
}

template <int kRowTile>
void launch_gemv(cudaStream_t stream, const GroupedInt4& p, int sms) {
  grouped_gemv_kernel<kRowTile><<<unsigned(sms * gemv_blocks_per_sm<kRowTile>()), kThreads, 0, stream>>>(p);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace

void grouped_gemv(cudaStream_t stream, const GroupedInt4& p, int device) {
  LLAMA4_CHECK(p.experts >= 1 && p.experts <= kMaxExperts && p.k % 32 == 0 && p.group % 32 == 0 &&
               p.k % p.group == 0, "moe_grouped_gemm_int4: gemv got E = ", p.experts, ", K = ", p.k,
               ", group = ", p.group);
  int sms = 0;
  LLAMA4_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  // The row tile from the mean rows per busy expert (the counts are on the device): one weight pass
  // serves up to kRowTile rows, and a smaller tile needs fewer registers (more warps in flight).
  const int64_t busy = p.rows < p.experts ? (p.rows > 0 ? p.rows : 1) : p.experts;
  const int64_t mean_rows = (p.rows + busy - 1) / busy;
  if (mean_rows <= 1) launch_gemv<1>(stream, p, sms);
  else if (mean_rows <= 2) launch_gemv<2>(stream, p, sms);
  else launch_gemv<4>(stream, p, sms);
}

void transpose_scales(cudaStream_t stream, const GroupedInt4& p, void* w_scale_t) {
  const int groups = p.k / p.group;
  const dim3 grid(unsigned(ceil_div(p.n, 32)), unsigned(ceil_div(groups, 32)), unsigned(p.experts));
  transpose_scales_kernel<<<grid, dim3(32, 8), 0, stream>>>(p, static_cast<uint16_t*>(w_scale_t));
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace llama4::cuda::int4
