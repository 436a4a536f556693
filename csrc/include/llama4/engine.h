// The serving engine: a TextModel, its paged KV cache and the live sequences. One step() runs a
// batch of sequences, each appending any number of tokens (prefill and decode mixed), in one call.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "llama4/context.h"
#include "llama4/kv_cache.h"
#include "llama4/model.h"

namespace llama4 {

class Communicator;
namespace detail {
class DecodeGraphs;
}

struct EngineOptions {
  int page_size = 16;                 // tokens per KV page
  int64_t kv_cache_bytes = 1LL << 30;  // memory budget of the KV cache
  int max_sequences = 16;             // live sequences the chunked-layer pool is sized for
  int64_t max_step_tokens = 0;        // tokens per sequence per forward pass (0: attention_chunk_size)
  int64_t image_token_id = -1;        // <|patch|> (config image_token_index); -1: text only
  // KV cache element type: unset = the model dtype; F8E4M3 = e4m3 with a float32 scale per token
  // and head (vLLM's kv_cache_dtype="fp8"); F32 / BF16 / F16 also accepted.
  std::optional<DType> kv_cache_dtype;
  // Several ranks (tensor + expert parallelism, llama4/shard.h): the group's communicator; the
  // weights are this rank's part. Rank 0's step() sends each forward pass's plan (token ids,
  // positions, page tables, slots, logits rows; the KV page copies of forks) to the others, which
  // run follow(). Every rank is built with the same options, so the KV pools have the same pages.
  std::shared_ptr<Communicator> comm;
  // CUDA, one rank: pure-decode steps (one token per sequence, at most max_sequences) run in fixed
  // layouts (the batch padded to a bucket, page tables to a power-of-two width) that are captured
  // once each in a CUDA graph and replayed (model/decode_graphs.h). enforce_eager (vLLM's name) runs
  // the same layouts without graphs, with the same results bit for bit. No effect on the CPU.
  bool enforce_eager = false;
  // The most decode graphs kept at once (one per layout in use); capturing one more destroys the
  // least recently used. Each holds one decode step's activations in CUDA's graph memory pool.
  int max_decode_graphs = 32;
  // For tests on machines without a GPU: CPU decode steps run in the same padded layouts (eagerly),
  // so the padding and the layout's inputs can be checked against the plain CPU path.
  bool decode_layouts_on_cpu = false;
};

// What the decode layouts of a CUDA engine did (all zero elsewhere).
struct DecodeGraphStats {
  int64_t graphs = 0;       // layouts with a captured graph
  int64_t captures = 0;     // graphs captured (once per layout)
  int64_t replays = 0;      // decode steps run by replaying a graph
  int64_t eager_steps = 0;  // decode-layout steps run eagerly (enforce_eager, a layout's first step, failed captures)
  int64_t evictions = 0;    // graphs destroyed to keep at most max_decode_graphs
  int64_t graph_memory_bytes = 0;  // CUDA's graph memory pool on the device (reserved bytes)
  std::string error;        // why the last failed capture failed ("" if none failed)
};

// Which logits rows a step request wants back.
enum class LogitRows : int8_t { Last = 0, All, None };

struct StepRequest {
  int64_t seq = 0;
  std::vector<int32_t> tokens;  // tokens appended to the sequence in this step (at least one)
  LogitRows logits = LogitRows::Last;  // the last new token's row, every new token's, or none
  // Optional early fusion: [n, D] rows (model dtype and device), one per image_token_id token of
  // `tokens`, taken in order (across the passes a long prompt is split into). Without it, such
  // tokens are embedded as text (a decode step that sampled the placeholder id, say).
  TensorView image_features;
};

class Engine {
 public:
  Engine(TextConfig config, DType dtype, WeightMap weights, const EngineOptions& options);
  // Rank 0 tells the other ranks to leave follow().
  ~Engine();
  Engine(Engine&&) noexcept;

  int64_t add_sequence();
  void free_sequence(int64_t seq);
  int64_t length(int64_t seq) const;

  // Runs the requests (each sequence at most once per step). Long prompts are split into passes of
  // at most max_step_tokens tokens inside this call. Returns float32 logits: for each request in
  // order, its rows (LogitRows: one per new token, one for its last token, or none).
  // Raises ValueError when a sequence would pass max_position_embeddings or when a request's
  // image_features rows disagree with its placeholder count, and CacheFullError
  // (leaving every sequence unchanged) when the KV cache cannot hold the step.
  // Several ranks: rank 0 only (the others run follow()); a rank that died or hangs raises
  // RankError within the communicator's timeout.
  Tensor step(const std::vector<StepRequest>& requests);

  // Ranks 1..N-1: runs the forward passes rank 0's step() sends, until rank 0's engine goes away
  // (returns) or a rank fails (RankError). While idle, rank 0 sends a keep-alive every quarter of
  // the timeout, so only a dead or hung rank 0 makes this time out.
  void follow();
  // Rank 0: tells the other ranks to leave follow() now (the destructor does it otherwise);
  // later steps raise RankError. Idempotent; a no-op elsewhere.
  void release_followers();
  int rank() const;
  int world_size() const;

  const TextModel& model() const { return model_; }
  // Where steps run: the model's device, on the calling thread's default stream there. The logits
  // of step() are ready on this context's stream (ops::copy to the host waits for them).
  const Context& context() const { return ctx_; }
  const KVCache& cache() const { return *cache_; }
  KVCache& cache() { return *cache_; }
  const EngineOptions& options() const { return options_; }  // max_step_tokens resolved
  // Whether pure-decode steps run in CUDA graphs (CUDA, one rank, not enforce_eager), and what they did.
  bool uses_cuda_graphs() const;
  DecodeGraphStats decode_graph_stats() const;

 private:
  void check_capacity(const std::vector<StepRequest>& requests) const;
  bool is_decode_step(const std::vector<StepRequest>& requests) const;
  Tensor decode_step(const std::vector<StepRequest>& requests);
  struct Group;  // the leader's keep-alive thread and the pass protocol (engine_group.cpp)
  struct GroupDeleter {
    void operator()(Group* g) const;
  };
  void start_group();
  std::unique_lock<std::mutex> lock_group();  // empty unless rank 0 of several
  void send_pass(const Tensor& ids, const KVCache::StepPlan& plan, const std::vector<int32_t>& rows,
                 int64_t image_token_id);
  // model_.forward; on rank 0 of several, an error that leaves the others inside the pass's
  // collectives marks the group broken (later steps raise instead of mismatching collectives).
  Tensor forward_pass(const Tensor& ids, const KVCache::StepPlan& plan, const std::vector<int32_t>& rows,
                      const TensorView& image_rows, int64_t image_token_id);

  TextModel model_;
  EngineOptions options_;
  Context ctx_;
  std::unique_ptr<KVCache> cache_;
  std::unique_ptr<Group, GroupDeleter> group_;  // rank 0 of several ranks only
  std::unique_ptr<detail::DecodeGraphs> decode_;  // CUDA, one rank only
};

}  // namespace llama4
