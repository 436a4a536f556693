// The serving loop: continuous batching of generation requests on one Engine.
//
//   Scheduler s(engine, options);
//   int64_t id = s.add_request(request);          // validated here; queued
//   while (s.has_unfinished()) for (auto& out : s.step()) ...;   // new tokens, finish reasons
//
// One step() = schedule -> one engine forward -> sample -> postprocess (STYLE.md §10):
//  - schedule: running sequences first, in admission order (decode: 1 token; a prompt still
//    prefilling: its next chunk), then waiting requests, first come first served, while the step's
//    token budget (max_step_tokens), max_batch and the KV cache's free pages allow. A long prompt is
//    prefilled in chunks across steps, mixed with other requests' decode tokens.
//  - preemption by recompute: when a running sequence cannot get the page its next token needs,
//    the newest running sequence is evicted (its pages freed) and requeued at the head of the
//    waiting queue with prompt + generated tokens as its new prompt; its random draws are keyed by
//    (seed, sample, token index), so its output is the same as if it had never been evicted.
//  - sample: one batched ops::sample call over the rows whose prompt is complete.
//  - n > 1: the prompt is prefilled once; its first n tokens are drawn from the same logits row
//    (samples 0..n-1) and the sequence is forked (KVCache::fork_sequence: pages shared by
//    reference count, the partial last page copied).
// Page accounting lives in the KVCache alone; the scheduler only asks it.
//
// add_request and cancel may be called from other threads while step() runs (they take a lock
// and take effect at the next step); step() itself is for one thread at a time.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "llama4/engine.h"
#include "llama4/sampling.h"

namespace llama4 {

constexpr int32_t kMaxSamples = 128;  // n per request (OpenAI's limit)

struct GenerationRequest {
  std::vector<int32_t> prompt;   // token ids (at least one)
  // [n_image_tokens, D] rows (model dtype and device) for the prompt's image placeholder tokens
  // (EngineOptions::image_token_id), in order; undefined for a text-only prompt. Kept (shared, not
  // copied) until the request ends: preempted sequences prefill again.
  Tensor image_features;
  SamplingParams sampling;       // including the seed and the number of logprobs to report
  int32_t n = 1;                 // samples drawn from this prompt (vLLM's n), 1..kMaxSamples
  int64_t max_new_tokens = 16;   // per sample; >= 0
  std::vector<int32_t> stop_token_ids;  // a sample ends after emitting one of these ("stop")
  bool return_logits = false;    // hand back the float32 logits row each token was drawn from
};

enum class FinishReason : int8_t { None = 0, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "", "stop", "length", "cancelled", "error"

struct TokenLogprobs {
  float logprob = 0.f;            // of the chosen token (raw model distribution)
  std::vector<int32_t> top_ids;   // the `logprobs` most likely tokens, most likely first
  std::vector<float> top_logprobs;
};

// What one step produced for one sample of one request.
struct SampleOutput {
  int64_t request_id = 0;
  int32_t sample = 0;                 // 0..n-1
  std::vector<int32_t> tokens;        // new tokens (one per step today)
  std::vector<TokenLogprobs> logprobs;  // one per token when sampling.logprobs >= 0
  Tensor logits;                      // [tokens, V] float32 when return_logits
  FinishReason finish = FinishReason::None;
  std::string error;                  // why, when finish == Error
};

struct SchedulerOptions {
  int64_t max_batch = 0;        // sequences running at once; 0: the engine's max_sequences
  int64_t max_step_tokens = 0;  // tokens per step, all sequences together; 0: 2048 (at least max_batch)
};

struct SchedulerStats {
  int64_t waiting = 0, running = 0;  // sequences, after the last step
  int64_t preemptions = 0;           // since construction
  int64_t steps = 0;                 // steps that ran the model
  int64_t computed_tokens = 0;       // tokens run through the model (prefill, recompute, decode)
  int64_t generated_tokens = 0;      // tokens sampled
};

class Scheduler {
 public:
  Scheduler(Engine& engine, const SchedulerOptions& options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Validates (ValueError / TypeError naming the field: empty prompt, ids outside the vocabulary,
  // prompt + max_new_tokens past max_position_embeddings, image rows that disagree with the
  // placeholders, bad sampling parameters) and queues the request. CacheFullError when one sample
  // of it cannot fit in the KV cache even alone; nothing is queued then.
  int64_t add_request(GenerationRequest request);
  // Ends a request now (sample < 0), or one of its samples (a stop string matched, say): pages are
  // freed and no more output comes for it. False when the request is unknown or already finished.
  bool cancel(int64_t request_id, int32_t sample = -1);

  std::vector<SampleOutput> step();
  // True while a request has output to come, or a cancellation still has pages to free (the next
  // step() frees them): `while (has_unfinished()) step();` leaves the KV cache as it found it.
  bool has_unfinished() const;
  SchedulerStats stats() const;  // as of the end of the last step (any thread)
  const Engine& engine() const { return engine_; }

 private:
  struct Sequence;
  struct Request;
  struct Inbox;

  void apply_inbox(std::vector<SampleOutput>& out);
  void schedule(std::vector<Sequence*>& batch, std::vector<int64_t>& chunk);
  int64_t next_chunk(const Sequence* s, int64_t budget) const;
  void run(const std::vector<Sequence*>& batch, const std::vector<int64_t>& chunk, std::vector<SampleOutput>& out);
  void preempt(Sequence* victim);
  void release(Sequence* s);     // frees its KV pages (it holds none afterwards)
  void end_sequence(Sequence* s);  // released, out of running/waiting, deleted; the request too when its last
  void sample_and_postprocess(const std::vector<Sequence*>& ready, const Tensor& logits,
                              std::vector<SampleOutput>& out);
  void start_samples(Sequence* first, const std::vector<int32_t>& tokens);
  void check_request(const GenerationRequest& r) const;

  Engine& engine_;
  SchedulerOptions options_;
  std::unique_ptr<Inbox> inbox_;
  std::unordered_map<int64_t, std::unique_ptr<Request>> requests_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // admission order: the back is the newest
  SchedulerStats stats_;           // the step thread's counters
  uint64_t default_seed_;           // for requests without a seed
  Tensor sample_workspace_;         // the sampler's scratch on the engine's device, reused
};

}  // namespace llama4
