// CUDA early-fusion embedding: out[t] = table[ids[t]], or the next image-feature row where
// ids[t] == image_token_id (rows consumed in token order). out/table/features: [*, D] rows of one
// activation dtype; ids: [T] int32/int64.
//
// One kernel on the context's stream, no scratch memory, no host synchronisation. Block g owns
// the token range [t0, t1) and finds each placeholder's feature row itself:
//   1. base = number of placeholders in ids[0, t0): the block counts them cooperatively (ids are
//      4-8 bytes per token and stay in L2, so with at most kMaxBlocks blocks this costs
//      kMaxBlocks * T / 2 cached reads, a few microseconds even for 64k-token passes);
//   2. for each chunk of blockDim tokens of its range: a block-wide exclusive scan of the
//      placeholder flags (warp ballots + one shared-memory pass) gives each token's feature row;
//   3. the block copies the chunk's rows, all threads striding over the row in 16-byte vectors
//      when the row size and pointers allow it (element-sized otherwise).
// The host already validated ids and the placeholder count (ops/embedding.cpp); as a last line of
// defence the kernel never reads outside table or features: an out-of-range id or a surplus
// placeholder writes a row of zeros instead.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/embedding.h"
#include "llama4/error.h"

namespace llama4::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kTokensPerBlock = 16;  // target; the grid is capped at kMaxBlocks
constexpr int64_t kMaxBlocks = 1024;

// Block-wide exclusive prefix count of `flag` and the block total. Every thread must call it.
__device__ __forceinline__ int block_exclusive_count(bool flag, int* total, int* warp_sums) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned ballot = __ballot_sync(0xffffffffu, flag);
  const int before_in_warp = __popc(ballot & ((1u << lane) - 1u));
  if (lane == 0) warp_sums[warp] = __popc(ballot);
  __syncthreads();
  int before = 0, sum = 0;
  for (int w = 0; w < kWarps; ++w) {
    before += w < warp ? warp_sums[w] : 0;
    sum += warp_sums[w];
  }
  __syncthreads();  // warp_sums is reused by the next call
  *total = sum;
  return before + before_in_warp;
}

// Block-wide sum of one int per thread. Every thread must call it.
__device__ __forceinline__ int64_t block_sum(int v, int* warp_sums) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  int64_t sum = 0;
  for (int w = 0; w < kWarps; ++w) sum += warp_sums[w];
  __syncthreads();  // warp_sums is reused afterwards
  return sum;
}

template <typename Id, typename Vec>
__global__ void __launch_bounds__(kThreads)
    embedding_fused_kernel(char* __restrict__ out, const char* __restrict__ table,
                           const char* __restrict__ features, const Id* __restrict__ ids,
                           int64_t T, int64_t V, int64_t R, int64_t row_vecs, int64_t image_token_id,
                           int64_t tokens_per_block) {
  __shared__ int warp_sums[kWarps];
  __shared__ int64_t src_row[kThreads];  // chunk token -> source: >= 0 table row, < -1 feature -2-r
  const int64_t t0 = int64_t(blockIdx.x) * tokens_per_block;
  const int64_t t1 = t0 + tokens_per_block < T ? t0 + tokens_per_block : T;
  if (t0 >= T) return;

  // 1. placeholders before this block's range: per-thread counts, then one block reduction.
  int before = 0;
  for (int64_t t = threadIdx.x; t < t0; t += kThreads) before += int64_t(ids[t]) == image_token_id;
  int64_t base = block_sum(before, warp_sums);

  for (int64_t c = t0; c < t1; c += kThreads) {
    // 2. feature rows of this chunk's placeholders.
    const int64_t t = c + threadIdx.x;
    const bool valid = t < t1;
    const int64_t id = valid ? int64_t(ids[t]) : -1;
    const bool is_image = valid && id == image_token_id;
    int n = 0;
    const int rank = block_exclusive_count(is_image, &n, warp_sums);
    if (valid) {
      int64_t src = -1;  // -1: write zeros (out-of-range id or surplus placeholder)
      if (is_image) {
        const int64_t r = base + rank;
        if (r < R) src = -2 - r;
      } else if (0 <= id && id < V) {
        src = id;
      }
      src_row[threadIdx.x] = src;
    }
    base += n;
    __syncthreads();

    // 3. copy the chunk's rows.
    const int64_t chunk = (t1 - c) < kThreads ? (t1 - c) : kThreads;
    for (int64_t i = 0; i < chunk; ++i) {
      const int64_t src = src_row[i];
      Vec* dst = reinterpret_cast<Vec*>(out) + (c + i) * row_vecs;
      const Vec* from = src >= 0    ? reinterpret_cast<const Vec*>(table) + src * row_vecs
                        : src < -1 ? reinterpret_cast<const Vec*>(features) + (-2 - src) * row_vecs
                                   : nullptr;
      for (int64_t x = threadIdx.x; x < row_vecs; x += kThreads) dst[x] = from ? from[x] : Vec{};
    }
    __syncthreads();  // src_row is rewritten by the next chunk
  }
}

struct alignas(16) V16 { uint4 v; };
struct alignas(8) V8 { uint2 v; };
struct alignas(4) V4 { uint32_t v; };
struct alignas(2) V2 { uint16_t v; };

bool aligned(const void* p, size_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; }

template <typename Id, typename Vec>
void launch(cudaStream_t s, const TensorView& out, const TensorView& table, const TensorView& ids,
            const TensorView& features, int64_t image_token_id, int64_t row_bytes) {
  const int64_t T = ids.size(0);
  const int64_t blocks = std::min<int64_t>(kMaxBlocks, (T + kTokensPerBlock - 1) / kTokensPerBlock);
  const int64_t per_block = (T + blocks - 1) / blocks;
  const int64_t R = features.data ? features.size(0) : 0;
  embedding_fused_kernel<Id, Vec><<<unsigned(blocks), kThreads, 0, s>>>(
      static_cast<char*>(out.data), static_cast<const char*>(table.data),
      static_cast<const char*>(features.data), ids.ptr<Id>(), T, table.size(0), R,
      row_bytes / int64_t(sizeof(Vec)), image_token_id, per_block);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename Id>
void launch_vec(cudaStream_t s, const TensorView& out, const TensorView& table, const TensorView& ids,
                const TensorView& features, int64_t image_token_id) {
  const int64_t row_bytes = table.size(1) * int64_t(element_size(table.dtype));
  // The widest access that divides the row and every base pointer.
  auto fits = [&](size_t n) {
    return row_bytes % int64_t(n) == 0 && aligned(out.data, n) && aligned(table.data, n) &&
           (!features.data || aligned(features.data, n));
  };
  if (fits(16)) launch<Id, V16>(s, out, table, ids, features, image_token_id, row_bytes);
  else if (fits(8)) launch<Id, V8>(s, out, table, ids, features, image_token_id, row_bytes);
  else if (fits(4)) launch<Id, V4>(s, out, table, ids, features, image_token_id, row_bytes);
  else launch<Id, V2>(s, out, table, ids, features, image_token_id, row_bytes);
}

}  // namespace

void embedding_fused(const Context& ctx, const TensorView& out, const TensorView& table,
                     const TensorView& ids, const TensorView& image_features, int64_t image_token_id) {
  if (ids.size(0) == 0) return;
  const OpScope scope(ctx);
  if (ids.dtype == DType::I64)
    launch_vec<int64_t>(scope.stream, out, table, ids, image_features, image_token_id);
  else
    launch_vec<int32_t>(scope.stream, out, table, ids, image_features, image_token_id);
}

}  // namespace llama4::cuda
