// The serving engine: a TextModel, its paged KV cache and the live sequences. One step() runs a
// batch of sequences, each appending any number of tokens (prefill and decode mixed), in one call.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "llama4/context.h"
#include "llama4/kv_cache.h"
#include "llama4/model.h"

namespace llama4 {

struct EngineOptions {
  int page_size = 16;                 // tokens per KV page
  int64_t kv_cache_bytes = 1LL << 30;  // memory budget of the KV cache
  int max_sequences = 16;             // live sequences the chunked-layer pool is sized for
  int64_t max_step_tokens = 0;        // tokens per sequence per forward pass (0: attention_chunk_size)
  int64_t image_token_id = -1;        // <|patch|> (config image_token_index); -1: text only
  // KV cache element type: unset = the model dtype; F8E4M3 = e4m3 with a float32 scale per token
  // and head (vLLM's kv_cache_dtype="fp8"); F32 / BF16 / F16 also accepted.
  std::optional<DType> kv_cache_dtype;
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

  int64_t add_sequence();
  void free_sequence(int64_t seq);
  int64_t length(int64_t seq) const;

  // Runs the requests (each sequence at most once per step). Long prompts are split into passes of
  // at most max_step_tokens tokens inside this call. Returns float32 logits: for each request in
  // order, its rows (LogitRows: one per new token, one for its last token, or none).
  // Raises ValueError when a sequence would pass max_position_embeddings or when a request's
  // image_features rows disagree with its placeholder count, and CacheFullError
  // (leaving every sequence unchanged) when the KV cache cannot hold the step.
  Tensor step(const std::vector<StepRequest>& requests);

  const TextModel& model() const { return model_; }
  // Where steps run: the model's device, on the calling thread's default stream there. The logits
  // of step() are ready on this context's stream (ops::copy to the host waits for them).
  const Context& context() const { return ctx_; }
  const KVCache& cache() const { return *cache_; }
  KVCache& cache() { return *cache_; }
  const EngineOptions& options() const { return options_; }  // max_step_tokens resolved

 private:
  void check_capacity(const std::vector<StepRequest>& requests) const;

  TextModel model_;
  EngineOptions options_;
  Context ctx_;
  std::unique_ptr<KVCache> cache_;
};

}  // namespace llama4
