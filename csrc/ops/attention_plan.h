// Host-side planning of CUDA paged attention, pure functions of shapes (no device data is read,
// so nothing here synchronises a step):
//  - choose_attention_kernel: the per-query split-KV kernel (cuda/paged_attention.cu) or the
//    tensor-core prefill kernel over query tiles (cuda/paged_prefill_attention.cu);
//  - prefill_tiles: the tiling of a batch's queries that the prefill kernel's device planner
//    computes from query_seq/query_pos, written here as the plain host loop it must match (tests).
#pragma once
#include <cstdint>
#include <vector>

#include "llama4/dtype.h"
#include "llama4/ops.h"

namespace llama4::ops {

// Rows of a prefill tile: the R = H / KV query heads of one KV head times consecutive queries of
// one sequence (FlashInfer's GQA packing). The CUDA kernel is built for exactly this many rows.
constexpr int64_t kPrefillTileRows = 64;

struct AttentionShape {
  int64_t T = 0;            // queries in the batch
  int64_t S = 0;            // rows of the page table (sequences)
  int64_t H = 0, KV = 0, d = 0;
  int64_t page_size = 0;
  int64_t table_width = 0;  // columns of the page table (logical pages per sequence)
  int64_t chunk = 0;        // chunked-local window (0 = global)
  DType q_dtype = DType::F32, cache_dtype = DType::F32;
  int kv_splits = 0;        // > 0: the caller forces flash-decoding splits
  bool aligned = true;      // the caches' base addresses are 16-byte aligned (cp.async)
};

// Queries per prefill tile: as many whole query tokens as their R heads fit in the tile's rows.
inline int64_t prefill_tile_tokens(int64_t R) { return R > 0 ? kPrefillTileRows / R : 0; }

// Empty when the prefill kernel can run these shapes, else why not (for the forced choice's error).
const char* prefill_unsupported_reason(const AttentionShape& s);

// The kernel to run: the requested one, or for kAuto the prefill tiles when supported and the batch
// holds on average at least two queries per sequence, unless the tiles are too few to fill the GPU
// while the windows are long (split-KV then spreads each window over many blocks). Raises
// ValueError when kPrefillTiles is requested for shapes it does not support.
AttentionKernel choose_attention_kernel(const AttentionShape& s, AttentionKernel requested);

// Tiles of a batch: runs of consecutive entries with the same sequence, consecutive positions and
// the same window start, each cut into pieces of `tile_tokens` from its first entry. Returns the
// first entry of every tile followed by T (so tile i is [r[i], r[i + 1])).
std::vector<int32_t> prefill_tiles(const int32_t* query_seq, const int32_t* query_pos, int64_t T,
                                   int64_t chunk, int64_t tile_tokens);

}  // namespace llama4::ops
