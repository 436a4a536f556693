// Decode steps on CUDA, in fixed layouts captured once each in a CUDA graph and replayed (as vLLM's
// CUDAGraphRunner and SGLang's CudaGraphRunner do).
//
// A pure-decode step (every sequence appends one token) of B sequences runs in a layout of
// `rows` = decode_bucket(B) rows and page tables `width` = decode_table_width(widest table) columns:
// the step's inputs — token ids, query rows, positions, slots and page tables of both layer groups
// — are packed on the host into a pinned buffer and copied with one asynchronous copy into the
// layout's device buffer, at addresses fixed for the layout's life, which the forward reads
// (TextModel::forward_into). Padding rows (B..rows-1) take token 0 at position 0 with slot -1 (the
// cache write skips them) and a page table whose first entry is page 0 of each group (so their
// attention reads finite numbers, and nothing of theirs reaches a real row); their logits are
// dropped. The logits go to one buffer of [max_batch, V] float32 shared by every layout (steps run
// one after the other on the engine's stream), and the step returns a copy of its B rows.
//
// With graphs on, a layout's first step runs eagerly (that step's result; it also warms whatever the
// ops set up on first use), then the same forward is captured on a side stream into a graph that
// later steps of the layout replay on the engine's stream. Every launch parameter is a function of
// the layout (rows, width), so a replay computes exactly what the eager forward of the same layout
// computes; with enforce_eager the same layouts run eagerly, so both modes give the same bits. The
// chunked-local layers need nothing more: their windows start at floor(position / chunk) * chunk,
// computed in the attention kernel from the positions in the buffer. A capture that fails (an op that
// cannot be captured) leaves that layout eager and records why (DecodeGraphStats::error).
//
// On the CPU (EngineOptions::decode_layouts_on_cpu, for tests) the same layouts run eagerly, so the
// padding is checked against the plain path on machines without a GPU (tests/test_decode_graphs.py).
//
// Graph memory: the forward's temporaries become the graph's allocations (cuda/graph.h), held by
// CUDA's graph memory pool while the graph lives (stats().graph_memory_bytes). At most max_graphs
// graphs live at once (EngineOptions::max_decode_graphs): capturing one more first destroys the least recently replayed (its layout
// captures again when next used) and trims the pool, so long runs over many widths stay bounded.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "llama4/context.h"
#include "llama4/engine.h"
#include "llama4/kv_cache.h"
#include "llama4/model.h"

namespace llama4::detail {

// The batch sizes decode layouts are built for: 1, 2, 4, then every multiple of 8 (vLLM's list),
// and max_batch itself; none above max_batch. ValueError for max_batch < 1.
std::vector<int64_t> decode_buckets(int64_t max_batch);
// The layout rows of a decode step of `batch` sequences: the smallest bucket >= batch, or 0 when
// batch is outside [1, max_batch] (such a step runs unpadded, without a graph).
int64_t decode_bucket(int64_t batch, int64_t max_batch);
// Page-table columns of a decode layout: the smallest power of two >= pages, at least 4. Tables
// grow a page at a time, so a sequence passes through O(log length) widths, each one graph.
int64_t decode_table_width(int64_t pages);

class DecodeGraphs {
 public:
  // ctx: the engine's (a CUDA device and its stream; the CPU without graphs); max_batch: the most sequences of a step in
  // a decode layout; vocab: the logits' width; use_graphs false = enforce_eager; max_graphs: the
  // most graphs kept at once.
  DecodeGraphs(const Context& ctx, int64_t max_batch, int64_t vocab, bool use_graphs, int64_t max_graphs);
  // Waits for the stream first: no graph is destroyed while a replay of it may still run.
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // One pure-decode step: tokens[i] appended to seqs[i], whose slots `cache` has reserved (the
  // caller commits afterwards). 1 <= seqs.size() <= max_batch. Returns logits [B, V] float32 in
  // seqs order, ready on ctx's stream, in memory of its own.
  Tensor step(const TextModel& model, KVCache& cache, const std::vector<int64_t>& seqs,
              const std::vector<int32_t>& tokens);

  bool use_graphs() const { return use_graphs_; }
  int64_t max_batch() const { return max_batch_; }
  DecodeGraphStats stats() const;

 private:
  // The fixed device buffer of one layout and the plan's views into it, and its graph.
  struct Layout {
    int64_t rows = 0, width = 0;
    Tensor inputs;  // int32 [5 * rows + 2 * rows * width]: ids, query rows, positions, slots x2, tables x2
    Tensor ids;     // [rows] view of inputs
    KVCache::StepPlan plan;
    std::shared_ptr<void> graph;  // the executable graph once captured
    bool failed = false;          // its capture failed: eager from now on
    uint64_t last_use = 0;        // step count at its last use (the graph evicted first: the oldest)
  };
  // A pinned host buffer the inputs are packed into, reused once its copy has run.
  struct Staging {
    std::shared_ptr<void> host;
    size_t bytes = 0;
    std::shared_ptr<void> copied;  // event after its last copy
  };

  Layout& layout(int64_t rows, int64_t width);
  void upload(const Layout& L, const KVCache& cache, const KVCache::HostPlan& plan,
              const std::vector<int32_t>& tokens);
  void capture(const TextModel& model, KVCache& cache, Layout& L, const TensorView& logits);
  void evict_oldest_graph(const Layout& keep);

  Context ctx_;
  int64_t max_batch_, vocab_;
  bool use_graphs_;
  int64_t max_graphs_;
  Tensor logits_;  // [max bucket, V] float32, shared by every layout
  std::map<std::pair<int64_t, int64_t>, Layout> layouts_;
  Staging staging_[2];
  int next_staging_ = 0;
  std::shared_ptr<void> capture_stream_;
  uint64_t steps_ = 0;
  DecodeGraphStats stats_;
};

}  // namespace llama4::detail
