// Paged KV cache for Llama 4's two kinds of attention layers.
//
// Layers fall in two groups with separate page pools:
//   group 0 "chunked": chunked-local (RoPE) layers; a query at p sees keys in [floor(p/C)*C, p],
//                      so pages wholly before the current chunk are returned to the pool;
//   group 1 "global":  global causal (NoPE) layers; every page of a sequence stays until it ends.
// A page holds page_size consecutive token positions of one sequence. A physical page id of a
// group indexes the K and V storage of EVERY layer in that group: per layer,
//   k(layer), v(layer): [num_pages_of_group, page_size, num_kv_heads, head_dim]  (config dtype,
//   config device), allocated (zeroed) once at construction. An FP8 cache (dtype float8_e4m3fn)
//   also holds scales(layer) = {k, v}: [num_pages_of_group, page_size, num_kv_heads] float32, one
//   per token and head (ops::KVScales): a page of d = 128 holds 2d / (d + 4) = 1.94x the tokens of
//   a bf16 page in the same bytes.
// Logical page i of a sequence holds positions [i*page_size, (i+1)*page_size).
//
// One decode/prefill step (STYLE.md §5, plan once per step, run per layer):
//   reserve(seqs, n_new)  -> page slots for positions length..length+n-1 (all or nothing)
//   plan(seqs, n_new)     -> page tables and slot mappings, built once, passed to every layer
//   ... per layer: ops::cache_write(k(l), v(l), k, v, plan.slots[group_of(l)]);
//                  ops::paged_attention(out, q, k(l), v(l), plan.page_table[group_of(l)], ...)
//   commit(seqs, n_new)   -> lengths advance; chunked pages out of every future window are freed
// Host-side bookkeeping only; the storage and the plan tensors live on config.device.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "llama4/context.h"
#include "llama4/ops.h"
#include "llama4/tensor.h"

namespace llama4 {

struct KVCacheConfig {
  int num_layers = 0;
  std::vector<int> layer_chunked;  // [num_layers]: 1 = chunked-local (RoPE), 0 = global (NoPE)
  int num_kv_heads = 0;
  int head_dim = 0;
  DType dtype = DType::BF16;  // float32 / bfloat16 / float16, or float8_e4m3fn (with scales)
  Device device;
  int page_size = 16;             // tokens per page
  int64_t chunk_size = 0;         // attention_chunk_size; 0 = none (then no layer may be chunked)
  int64_t num_pages_chunked = 0;  // pool size of group 0
  int64_t num_pages_global = 0;   // pool size of group 1

  // Sizes the two pools from a memory budget (bytes of K+V storage, all layers together).
  // Tokens cost the same per layer in both groups, so the budget is split per token; but a live
  // sequence never holds more than chunked_pages_bound(...) chunked-group pages (see below), so
  // the chunked pool is capped at that bound for max_seqs sequences and the global pool gets the
  // rest (all of it goes to the chunked pool when there are no global layers). Long contexts then
  // cost memory only on the global layers.
  // max_step_tokens: the most tokens one step adds to one sequence (0 = chunk_size; never more).
  // ValueError when the budget cannot run even one sequence (a chunk window + one step).
  static KVCacheConfig from_budget(int num_layers, std::vector<int> layer_chunked, int num_kv_heads,
                                   int head_dim, DType dtype, Device device, int page_size,
                                   int64_t chunk_size, int64_t budget_bytes, int64_t max_seqs,
                                   int64_t max_step_tokens = 0);

  // The most chunked-group pages one sequence holds: before a step it holds the pages from its
  // chunk start floor(L/C)*C to L-1, i.e. at most ceil(C/P) plus one straddling page; a step adds
  // the pages of up to max_step_tokens more positions. Bound: ceil(C/P) + ceil(n/P) + 1.
  static int64_t chunked_pages_bound(int page_size, int64_t chunk_size, int64_t max_step_tokens);

  int num_layers_in(int group) const;  // layers of group 0 (chunked) or 1 (global)
  // K+V bytes (with the FP8 scales) of one physical page across its group's layers.
  int64_t page_bytes(int group) const;
  int64_t pool_bytes() const;           // K+V bytes of both pools: pages x page_bytes per group
  void validate() const;                // ValueError / TypeError naming the bad field
};

class KVCache {
 public:
  // Its pages are zeroed, page copies made and per-step plans uploaded on `ctx`'s stream (by
  // default the per-thread default stream of config.device); ctx.device() must be config.device.
  explicit KVCache(const KVCacheConfig& config);
  KVCache(const KVCacheConfig& config, const Context& ctx);
  // A copy would share the storage but not the bookkeeping: move only.
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;
  KVCache(KVCache&&) = default;
  KVCache& operator=(KVCache&&) = default;

  // Sequences: ids are never reused. Invalid ids -> ValueError naming the id.
  int64_t add_sequence();
  void free_sequence(int64_t id);  // drops its references to the pages of both groups
  int64_t length(int64_t id) const;  // tokens committed

  // A new sequence with the same committed tokens as `parent` (parallel samples of one prompt):
  // its full pages are shared by reference count; the partly filled last page (the next token
  // writes into it) is copied into a fresh page of each group, so neither sequence ever writes a
  // shared page. Needs fork_pages(parent) free pages per active group, else CacheFullError with
  // nothing changed. The parent must have no reserved-but-uncommitted pages.
  int64_t fork_sequence(int64_t parent);
  // Page copies fork_sequence made (group, from, to), in order, since the last call; recorded only
  // after record_page_copies(true). Several ranks: the rank that schedules sends them to the others,
  // whose caches (the same pages, other heads) apply them with copy_page.
  struct PageCopy {
    int32_t group, from, to;
  };
  void record_page_copies(bool on) { record_copies_ = on; }
  std::vector<PageCopy> take_page_copies();
  void copy_page(int group, int32_t from, int32_t to);  // K and V of every layer of the group
  int64_t fork_pages(int64_t parent) const;  // 1 if the last page is partly filled, else 0

  // Page accounting for schedulers: the new pages (per active group; both groups grow in
  // lockstep) that appending n tokens to `seq` needs, and whether a batch would fit.
  int64_t pages_needed(int64_t seq, int64_t n) const;
  // Pages a fresh sequence of `tokens` positions holds at most at once in `group` (chunked
  // pages out of the window are returned as it grows, `max_step_tokens` at a time).
  int64_t pages_for_tokens(int group, int64_t tokens, int64_t max_step_tokens) const;

  // Atomically reserve page slots for n_new[i] tokens appended to seqs[i] (positions
  // length..length+n-1). If either pool cannot hold ALL of them: CacheFullError, nothing changed.
  // ValueError for unknown or repeated ids, n < 0, or n > chunk_size (the engine splits longer
  // prefills). Pages already reserved (by an earlier reserve without commit) are reused.
  void reserve(const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new);
  // After the forward pass wrote the new tokens: advance lengths, then return to the pool every
  // chunked-group page whose positions all lie before floor(length/C)*C, the chunk start of the
  // next position (no future query can attend to them). n_new[i] must be reserved.
  void commit(const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new);

  // Step metadata for a batch (call after reserve, before commit). T = sum(n_new); tokens are in
  // batch order: seqs[0]'s n_new[0] tokens, then seqs[1]'s, ...
  struct StepPlan {
    Tensor page_table[2];  // [num_seqs, max_logical_pages] int32, physical page or -1
    Tensor slots[2];       // [T] int32: physical_page * page_size + offset of each new token
    Tensor query_seq;      // [T] int32: row of the token's sequence in page_table
    Tensor query_pos;      // [T] int32: absolute position of the token
  };
  StepPlan plan(const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new) const;
  // The same plan as host arrays (before the upload), with page tables `width` columns wide (at
  // least table_width(seqs); 0: exactly that); columns past a sequence's pages hold -1. The
  // decode-graph runner (model/decode_graphs.h) uploads it into a graph's fixed buffers.
  struct HostPlan {
    int64_t width = 0;
    std::vector<int32_t> page_table[2];  // [num_seqs * width] each
    std::vector<int32_t> slots[2], query_seq, query_pos;  // [T] each
  };
  HostPlan host_plan(const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new,
                     int64_t width = 0) const;
  // The widest page table among seqs (logical pages reserved), the width plan() gives.
  int64_t table_width(const std::vector<int64_t>& seqs) const;

  // Layer storage [num_pages_of_group, page_size, num_kv_heads, head_dim].
  const TensorView& k(int layer) const;
  const TensorView& v(int layer) const;
  // The owning tensors behind k()/v() (to hand out views that keep the storage alive).
  const Tensor& k_tensor(int layer) const;
  const Tensor& v_tensor(int layer) const;
  // FP8 caches: the layer's per-(token, head) scales; unset views otherwise.
  ops::KVScales scales(int layer) const;
  const Tensor& k_scale_tensor(int layer) const;  // FP8 caches only (ValueError otherwise)
  const Tensor& v_scale_tensor(int layer) const;
  int group_of(int layer) const;  // 0 chunked, 1 global

  int64_t free_pages(int group) const;
  int64_t total_pages(int group) const;
  // Bytes of K/V storage allocated (the layers' tensors, counted from the tensors themselves).
  int64_t storage_bytes() const;
  // Page table of one sequence in one group: entry i = physical page of logical page i, or -1
  // (chunked pages already returned). Covers every reserved position.
  std::vector<int32_t> pages_of(int64_t seq, int group) const;

  const KVCacheConfig& config() const { return config_; }
  int64_t num_sequences() const { return int64_t(seqs_.size()); }
  bool contains(int64_t id) const { return seqs_.count(id) != 0; }

 private:
  struct Sequence {
    int64_t length = 0;               // committed tokens
    int64_t chunked_freed = 0;        // logical chunked pages [0, chunked_freed) were returned
    std::vector<int32_t> pages[2];    // per group, one entry per reserved logical page
  };
  struct Pool {
    std::vector<int32_t> free;  // stack of free physical page ids
    std::vector<int32_t> refs;  // per physical page: sequences holding it (0 = free)
    int64_t total = 0;
    bool active = false;        // has layers; an inactive group allocates nothing (entries -1)
    int32_t take();             // a free page, now held once
    void drop(int32_t page);    // one holder fewer; back to the free stack at zero
  };

  const Sequence& seq(int64_t id, const char* op) const;
  Sequence& seq(int64_t id, const char* op);
  void check_batch(const char* op, const std::vector<int64_t>& seqs,
                   const std::vector<int64_t>& n_new) const;
  void check_group(const char* op, int group) const;
  void check_layer(const char* op, int layer) const;

  KVCacheConfig config_;
  std::vector<Tensor> k_, v_;              // per layer
  std::vector<Tensor> k_scale_, v_scale_;  // per layer, FP8 caches only
  bool record_copies_ = false;
  Context ctx_;  // the stream the cache's own copies and uploads go on
  std::vector<PageCopy> copies_;
  Pool pools_[2];
  std::unordered_map<int64_t, Sequence> seqs_;
  int64_t next_id_ = 0;
};

}  // namespace llama4
