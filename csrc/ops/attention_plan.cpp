// Host-side planning of CUDA paged attention (contracts: ops/attention_plan.h).
#include "ops/attention_plan.h"

#include <algorithm>

#include "llama4/error.h"

namespace llama4::ops {

namespace {

// Below this many (tile, KV head) blocks a GPU (132 SMs on an H100) has idle SMs ...
constexpr int64_t kFillBlocks = 132;
// ... which matters when the windows are long: then split-KV spreads each window over many blocks.
// A guess from the kernels' structure, to revisit with GPU measurements (bench_cuda_text.py).
constexpr int64_t kLongWindowKeys = 2048;

int64_t window_start(int64_t pos, int64_t chunk) { return chunk > 0 ? pos / chunk * chunk : 0; }

}  // namespace

const char* prefill_unsupported_reason(const AttentionShape& s) {
  if (s.q_dtype != DType::BF16) return "q must be bfloat16";
  if (s.cache_dtype != DType::BF16 && s.cache_dtype != DType::F8E4M3)
    return "the cache must be bfloat16 or float8_e4m3fn";
  if (s.d != 64 && s.d != 128) return "head_dim must be 64 or 128";
  if (s.KV <= 0 || s.H % s.KV != 0 || s.H / s.KV > kPrefillTileRows)
    return "at most 64 query heads per KV head fit a tile";
  if (s.KV > 65535) return "more than 65535 KV heads exceed the CUDA grid";
  if (!s.aligned) return "the caches must be 16-byte aligned";
  return "";
}

AttentionKernel choose_attention_kernel(const AttentionShape& s, AttentionKernel requested) {
  const char* why = prefill_unsupported_reason(s);
  if (requested == AttentionKernel::kPrefillTiles) {
    LLAMA4_CHECK_ARG(*why == 0, "paged_attention: kernel 'prefill' cannot run these inputs: ", why);
    return requested;
  }
  if (requested == AttentionKernel::kSplitKV) return requested;
  if (*why != 0 || s.kv_splits > 0) return AttentionKernel::kSplitKV;
  // Decode-dominated: most queries are alone in their sequence, a tile would hold one query.
  if (s.T < 2 * s.S) return AttentionKernel::kSplitKV;
  const int64_t tiles = (s.T + prefill_tile_tokens(s.H / s.KV) - 1) / prefill_tile_tokens(s.H / s.KV);
  const int64_t table_keys = s.table_width * s.page_size;
  const int64_t max_keys = s.chunk > 0 ? std::min(s.chunk, table_keys) : table_keys;
  if (tiles * s.KV < kFillBlocks && max_keys > kLongWindowKeys) return AttentionKernel::kSplitKV;
  return AttentionKernel::kPrefillTiles;
}

std::vector<int32_t> prefill_tiles(const int32_t* query_seq, const int32_t* query_pos, int64_t T,
                                   int64_t chunk, int64_t tile_tokens) {
  LLAMA4_CHECK_ARG(tile_tokens > 0, "prefill_tiles: 'tile_tokens' must be > 0, got ", tile_tokens);
  std::vector<int32_t> first;
  int64_t run = 0;  // first entry of the current run
  for (int64_t t = 0; t < T; ++t) {
    const int64_t p = query_pos[t];
    const bool breaks = t == 0 || query_seq[t] != query_seq[t - 1] || p != int64_t(query_pos[t - 1]) + 1 ||
                        window_start(p, chunk) != window_start(query_pos[t - 1], chunk);
    if (breaks) run = t;
    if ((t - run) % tile_tokens == 0) first.push_back(int32_t(t));
  }
  first.push_back(int32_t(T));
  return first;
}

}  // namespace llama4::ops
