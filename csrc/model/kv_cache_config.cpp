// KVCacheConfig: validation, per-page sizes, and sizing the two page pools from a memory budget.
#include <algorithm>
#include <limits>

#include "llama4/error.h"
#include "llama4/kv_cache.h"

namespace llama4 {

namespace {
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

int64_t KVCacheConfig::chunked_pages_bound(int page_size, int64_t chunk_size,
                                           int64_t max_step_tokens) {
  LLAMA4_CHECK_ARG(page_size > 0, "KVCacheConfig: 'page_size' must be > 0, got ", page_size);
  LLAMA4_CHECK_ARG(chunk_size > 0, "KVCacheConfig: 'chunk_size' must be > 0 for chunked layers, got ",
                   chunk_size);
  LLAMA4_CHECK_ARG(max_step_tokens > 0 && max_step_tokens <= chunk_size,
                   "KVCacheConfig: 'max_step_tokens' must be in [1, chunk_size=", chunk_size,
                   "], got ", max_step_tokens);
  // With cs = floor(L/C)*C >= L-C+1, a sequence holds logical pages floor(cs/P) ..
  // floor((L+n-1)/P) during a step adding n tokens. floor(x/P) - floor(y/P) <= floor((x-y)/P) + 1
  // and x - y <= C+n-2 give a count <= floor((C+n-2)/P) + 2 <= ceil(C/P) + ceil(n/P) + 1.
  return ceil_div(chunk_size, page_size) + ceil_div(max_step_tokens, page_size) + 1;
}

int KVCacheConfig::num_layers_in(int group) const {
  LLAMA4_CHECK_ARG(group == 0 || group == 1, "KVCacheConfig: group must be 0 (chunked) or 1 (global), got ",
                   group);
  int n = 0;
  for (int c : layer_chunked) n += (group == 0) == (c != 0);
  return n;
}

int64_t KVCacheConfig::page_bytes(int group) const {
  // FP8: a float32 scale per (token, head) row next to its head_dim e4m3 values.
  const int64_t row = head_dim * int64_t(element_size(dtype)) + (dtype == DType::F8E4M3 ? 4 : 0);
  return 2 * int64_t(page_size) * num_kv_heads * row * num_layers_in(group);
}

int64_t KVCacheConfig::pool_bytes() const {
  // An inactive group (no layers) allocates nothing whatever its page count says.
  return (num_layers_in(0) > 0 ? num_pages_chunked * page_bytes(0) : 0) +
         (num_layers_in(1) > 0 ? num_pages_global * page_bytes(1) : 0);
}

void KVCacheConfig::validate() const {
  constexpr const char* who = "KVCacheConfig";
  LLAMA4_CHECK_ARG(num_layers > 0, who, ": 'num_layers' must be > 0, got ", num_layers);
  LLAMA4_CHECK_ARG(int(layer_chunked.size()) == num_layers, who, ": 'layer_chunked' must have ",
                   num_layers, " entries (one per layer), got ", layer_chunked.size());
  for (size_t i = 0; i < layer_chunked.size(); ++i)
    LLAMA4_CHECK_ARG(layer_chunked[i] == 0 || layer_chunked[i] == 1, who, ": 'layer_chunked[", i,
                     "]' must be 0 or 1, got ", layer_chunked[i]);
  LLAMA4_CHECK_ARG(num_kv_heads > 0, who, ": 'num_kv_heads' must be > 0, got ", num_kv_heads);
  LLAMA4_CHECK_ARG(head_dim > 0, who, ": 'head_dim' must be > 0, got ", head_dim);
  LLAMA4_CHECK_TYPE(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16 ||
                        dtype == DType::F8E4M3,
                    who, ": 'dtype' must be float32/bfloat16/float16/float8_e4m3fn, got ", dtype_name(dtype));
  LLAMA4_CHECK_ARG(page_size > 0, who, ": 'page_size' must be > 0, got ", page_size);
  LLAMA4_CHECK_ARG(chunk_size >= 0, who, ": 'chunk_size' must be >= 0, got ", chunk_size);
  LLAMA4_CHECK_ARG(chunk_size > 0 || num_layers_in(0) == 0, who,
                   ": chunked layers need 'chunk_size' > 0 (attention_chunk_size), got 0");
  LLAMA4_CHECK_ARG(num_pages_chunked >= 0, who, ": 'num_pages_chunked' must be >= 0, got ",
                   num_pages_chunked);
  LLAMA4_CHECK_ARG(num_pages_global >= 0, who, ": 'num_pages_global' must be >= 0, got ",
                   num_pages_global);
  // Slots are int32 (page * page_size + offset), as the kernels read them.
  constexpr int64_t kMaxSlots = std::numeric_limits<int32_t>::max();
  LLAMA4_CHECK_ARG(num_pages_chunked <= kMaxSlots / page_size && num_pages_global <= kMaxSlots / page_size,
                   who, ": at most ", kMaxSlots / page_size, " pages of ", page_size,
                   " tokens fit int32 slot ids, got ", num_pages_chunked, " / ", num_pages_global);
}

KVCacheConfig KVCacheConfig::from_budget(int num_layers, std::vector<int> layer_chunked,
                                         int num_kv_heads, int head_dim, DType dtype, Device device,
                                         int page_size, int64_t chunk_size, int64_t budget_bytes,
                                         int64_t max_seqs, int64_t max_step_tokens) {
  constexpr const char* who = "KVCacheConfig.from_budget";
  KVCacheConfig c;
  c.num_layers = num_layers;
  c.layer_chunked = std::move(layer_chunked);
  c.num_kv_heads = num_kv_heads;
  c.head_dim = head_dim;
  c.dtype = dtype;
  c.device = device;
  c.page_size = page_size;
  c.chunk_size = chunk_size;
  c.validate();
  LLAMA4_CHECK_ARG(budget_bytes > 0, who, ": 'budget_bytes' must be > 0, got ", budget_bytes);
  LLAMA4_CHECK_ARG(max_seqs > 0, who, ": 'max_seqs' must be > 0, got ", max_seqs);
  const int n_chunked = c.num_layers_in(0), n_global = c.num_layers_in(1);
  const int64_t bytes0 = c.page_bytes(0), bytes1 = c.page_bytes(1);

  const int64_t step = max_step_tokens > 0 ? max_step_tokens : chunk_size;
  const int64_t bound = n_chunked > 0 ? chunked_pages_bound(page_size, chunk_size, step) : 0;
  // The least that lets one sequence run: a full chunk window on the chunked layers and one
  // step's pages on the global layers.
  const int64_t min_global = n_global > 0 ? (step + page_size - 1) / page_size + 1 : 0;
  const int64_t need = bound * bytes0 + min_global * bytes1;
  LLAMA4_CHECK_ARG(need <= budget_bytes, who, ": a budget of ", budget_bytes,
                   " bytes is too small: one sequence needs ", bound, " chunked-layer pages (",
                   bound * bytes0, " bytes) and ", min_global, " global-layer pages (",
                   min_global * bytes1, " bytes)");
  int64_t chunked = 0;
  if (n_global == 0) {
    chunked = budget_bytes / bytes0;
  } else if (n_chunked > 0) {
    // A token costs the same per layer in both groups, so split the budget per token, but never
    // give the chunked layers more than max_seqs sequences can hold (the bound), nor less than one.
    const int64_t even = budget_bytes / (bytes0 + bytes1);
    chunked = std::min(std::max(even, bound), max_seqs * bound);
    chunked = std::min(chunked, (budget_bytes - min_global * bytes1) / bytes0);
  }
  if (n_global > 0) c.num_pages_global = (budget_bytes - chunked * bytes0) / bytes1;
  c.num_pages_chunked = chunked;
  // Stay within int32 slot ids (huge CPU budgets with tiny heads would overflow them).
  const int64_t max_pages = std::numeric_limits<int32_t>::max() / page_size;
  if (c.num_pages_global > max_pages) c.num_pages_global = max_pages;
  if (c.num_pages_chunked > max_pages) c.num_pages_chunked = max_pages;
  return c;
}

}  // namespace llama4
