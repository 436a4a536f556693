// Scheduler: requests in, admission, and the choice of what runs in each step (chunked prefill,
// preemption by recompute). The step itself is in scheduler_step.cpp; the contract in
// llama4/scheduler.h.
#include "llama4/scheduler.h"

#include <algorithm>
#include <random>

#include "llama4/error.h"
#include "model/image_rows.h"
#include "model/scheduler_state.h"

namespace llama4 {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "";
}

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Whether `pages` more logical pages fit in every active pool (both grow in lockstep).
bool fits(const KVCache& cache, int64_t pages) {
  for (int g = 0; g < 2; ++g)
    if (cache.total_pages(g) > 0 && pages > cache.free_pages(g)) return false;
  return true;
}
}  // namespace

Scheduler::Scheduler(Engine& engine, const SchedulerOptions& options)
    : engine_(engine), options_(options), inbox_(std::make_unique<Inbox>()) {
  const int64_t max_seqs = engine_.options().max_sequences;
  LLAMA4_CHECK_ARG(options_.max_batch >= 0, "max_batch must be >= 0 (0: the engine's max_sequences, ",
                   max_seqs, "), got ", options_.max_batch);
  LLAMA4_CHECK_ARG(options_.max_step_tokens >= 0, "max_step_tokens must be >= 0 (0: 2048), got ",
                   options_.max_step_tokens);
  // The chunked-layer pool is sized for max_sequences live sequences: more would only preempt.
  if (options_.max_batch == 0 || options_.max_batch > max_seqs) options_.max_batch = max_seqs;
  if (options_.max_step_tokens == 0) options_.max_step_tokens = std::max<int64_t>(2048, options_.max_batch);
  LLAMA4_CHECK_ARG(options_.max_step_tokens >= options_.max_batch, "max_step_tokens (",
                   options_.max_step_tokens, ") must be >= max_batch (", options_.max_batch,
                   "): every running sequence needs a token per step");
  std::random_device rd;
  default_seed_ = (uint64_t(rd()) << 32) ^ rd();
}

Scheduler::~Scheduler() {
  for (Sequence* s : running_) {
    release(s);
    delete s;
  }
  for (Sequence* s : waiting_) delete s;
}

// ---- requests ---------------------------------------------------------------------------------

void Scheduler::check_request(const GenerationRequest& r) const {
  const TextConfig& c = engine_.model().config();
  LLAMA4_CHECK_ARG(!r.prompt.empty(), "prompt must hold at least one token id");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    LLAMA4_CHECK_ARG(0 <= r.prompt[i] && r.prompt[i] < c.vocab_size, "prompt[", i, "] = ", r.prompt[i],
                     " is outside the vocabulary [0, ", c.vocab_size, ")");
  for (size_t i = 0; i < r.stop_token_ids.size(); ++i)
    LLAMA4_CHECK_ARG(0 <= r.stop_token_ids[i] && r.stop_token_ids[i] < c.vocab_size, "stop_token_ids[", i,
                     "] = ", r.stop_token_ids[i], " is outside the vocabulary [0, ", c.vocab_size, ")");
  LLAMA4_CHECK_ARG(r.max_new_tokens >= 0, "max_new_tokens must be >= 0, got ", r.max_new_tokens);
  const int64_t len = int64_t(r.prompt.size());
  LLAMA4_CHECK_ARG(len + r.max_new_tokens <= c.max_position_embeddings, "the prompt has ", len,
                   " tokens; with max_new_tokens = ", r.max_new_tokens,
                   " it exceeds the context length ", c.max_position_embeddings, " (max_position_embeddings)");
  LLAMA4_CHECK_ARG(r.n >= 1 && r.n <= kMaxSamples, "n must be in [1, ", kMaxSamples, "], got ", r.n);
  r.sampling.validate();
  const StepRequest whole{0, r.prompt, LogitRows::None, r.image_features.view()};
  check_image_features(whole, engine_.options().image_token_id, engine_.model());

  // One sample alone must fit; its last token never enters the cache.
  const KVCache& cache = engine_.cache();
  const int64_t tokens = len + std::max<int64_t>(r.max_new_tokens, 1) - 1;
  for (int g = 0; g < 2; ++g) {
    const int64_t need = cache.pages_for_tokens(g, tokens, engine_.options().max_step_tokens);
    if (need > cache.total_pages(g))
      throw CacheFullError(detail::concat(
          "KV cache full: this request needs ", need, " ", g == 0 ? "chunked-layer" : "global-layer", " KV pages (", len,
          " prompt tokens + ", r.max_new_tokens, " new) but the cache holds only ", cache.total_pages(g),
          " even with nothing else running; load with a larger kv_cache_bytes or ask for fewer tokens"));
  }
}

int64_t Scheduler::add_request(GenerationRequest request) {
  check_request(request);
  auto req = std::make_unique<Request>();
  req->r = std::move(request);
  const Tensor& f = req->r.image_features;
  req->image_rows = f.defined() && f.view().ndim > 0 ? f.size(0) : 0;
  std::lock_guard<std::mutex> lock(inbox_->mutex);
  req->id = inbox_->next_id++;
  req->seed = req->r.sampling.seed ? *req->r.sampling.seed : splitmix64(default_seed_ ^ uint64_t(req->id));
  const int64_t id = req->id;
  inbox_->live.insert(id);
  inbox_->added.push_back(std::move(req));
  return id;
}

bool Scheduler::cancel(int64_t request_id, int32_t sample) {
  std::lock_guard<std::mutex> lock(inbox_->mutex);
  if (!inbox_->live.count(request_id)) return false;
  if (sample < 0) inbox_->live.erase(request_id);  // a whole request: over for the caller now
  inbox_->cancelled.emplace_back(request_id, sample);
  return true;
}

bool Scheduler::has_unfinished() const {
  std::lock_guard<std::mutex> lock(inbox_->mutex);
  // A cancellation frees its pages at the next step: until then there is work left.
  return !inbox_->live.empty() || !inbox_->cancelled.empty();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(inbox_->mutex);
  return inbox_->published;
}

void Scheduler::apply_inbox(std::vector<SampleOutput>& out) {
  std::vector<std::unique_ptr<Request>> added;
  std::vector<std::pair<int64_t, int32_t>> cancelled;
  {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    added.swap(inbox_->added);
    cancelled.swap(inbox_->cancelled);
  }
  for (auto& req : added) {
    Request* r = req.get();
    requests_.emplace(r->id, std::move(req));
    auto* s = new Sequence;
    s->req = r;
    s->tokens = r->r.prompt;
    s->prompt_len = int64_t(s->tokens.size());
    r->live = 1;
    if (r->r.max_new_tokens > 0) {
      waiting_.push_back(s);
      continue;
    }
    // Nothing to generate: every sample ends now, before it takes any memory.
    for (int32_t k = 0; k < r->r.n; ++k) {
      SampleOutput o;
      o.request_id = r->id;
      o.sample = k;
      o.finish = FinishReason::Length;
      out.push_back(std::move(o));
    }
    end_sequence(s);
  }
  for (const auto& [id, which] : cancelled) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;  // finished meanwhile
    Request* req = it->second.get();
    const auto sample = which;  // a lambda cannot capture a structured binding in C++17 (clang says so)
    std::vector<Sequence*> doomed;
    auto pick = [&](Sequence* s) {
      if (s->req == req && (sample < 0 || s->sample == sample)) doomed.push_back(s);
    };
    for (Sequence* s : running_) pick(s);
    for (Sequence* s : waiting_) pick(s);
    // live == the request's existing sequences, so ending them all ends the request.
    for (Sequence* s : doomed) end_sequence(s);
  }
}

// ---- sequences --------------------------------------------------------------------------------

void Scheduler::release(Sequence* s) {
  if (s->kv >= 0) engine_.cache().free_sequence(s->kv);
  s->kv = -1;
}

void Scheduler::end_sequence(Sequence* s) {
  release(s);
  running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), s), waiting_.end());
  Request* req = s->req;
  delete s;
  if (--req->live > 0) return;
  const int64_t id = req->id;
  requests_.erase(id);
  std::lock_guard<std::mutex> lock(inbox_->mutex);
  inbox_->live.erase(id);
}

void Scheduler::preempt(Sequence* victim) {
  release(victim);
  victim->computed = 0;  // prompt + generated tokens are prefilled again
  victim->image_rows_done = 0;
  running_.erase(std::find(running_.begin(), running_.end(), victim));
  waiting_.push_front(victim);
  ++stats_.preemptions;
}

// ---- scheduling -------------------------------------------------------------------------------

// Tokens of s to run now: the rest of its prompt (or its newest token), within the step's budget
// and the engine's per-sequence pass. Image rows belong to prompt positions only, so when a
// recomputed sequence generated placeholder ids itself, its prompt part runs in a pass of its own.
int64_t Scheduler::next_chunk(const Sequence* s, int64_t budget) const {
  int64_t n = std::min({int64_t(s->tokens.size()) - s->computed, budget, engine_.options().max_step_tokens});
  if (s->req->image_rows > 0 && s->computed < s->prompt_len) {
    const int32_t image_id = int32_t(engine_.options().image_token_id);
    if (std::find(s->tokens.begin() + s->prompt_len, s->tokens.end(), image_id) != s->tokens.end())
      n = std::min(n, s->prompt_len - s->computed);
  }
  return n;
}

void Scheduler::schedule(std::vector<Sequence*>& batch, std::vector<int64_t>& chunk) {
  KVCache& cache = engine_.cache();
  int64_t budget = options_.max_step_tokens, pages = 0;

  // Running sequences, oldest first; when one cannot get its pages, the newest is preempted.
  // A prefill chunk leaves one token of the budget for each decoding sequence after it.
  int64_t decoders = 0;
  for (const Sequence* s : running_) decoders += int64_t(s->tokens.size()) - s->computed == 1;
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence* s = running_[i];
    const bool decoding = int64_t(s->tokens.size()) - s->computed == 1;
    decoders -= decoding;
    const int64_t n = next_chunk(s, decoding ? budget : budget - decoders);
    if (n <= 0) continue;  // the budget went to older sequences' prefill chunks
    const int64_t need = cache.pages_needed(s->kv, n);
    // Victims come from the back, after s: none of them is in the batch yet.
    while (!fits(cache, pages + need) && running_.back() != s) {
      decoders -= int64_t(running_.back()->tokens.size()) - running_.back()->computed == 1;
      preempt(running_.back());
    }
    if (!fits(cache, pages + need)) {  // s is the newest and still does not fit: it waits
      preempt(s);
      break;
    }
    batch.push_back(s);
    chunk.push_back(n);
    pages += need;
    budget -= n;
  }

  // Waiting sequences, first come first served (no skipping ahead, so nothing starves).
  const int64_t P = cache.config().page_size;
  while (!waiting_.empty() && int64_t(running_.size()) < options_.max_batch && budget > 0) {
    Sequence* s = waiting_.front();
    const int64_t n = next_chunk(s, budget);
    const int64_t need = (n + P - 1) / P;
    if (!fits(cache, pages + need)) break;
    waiting_.pop_front();
    s->kv = cache.add_sequence();
    running_.push_back(s);
    batch.push_back(s);
    chunk.push_back(n);
    pages += need;
    budget -= n;
  }
}

}  // namespace llama4
