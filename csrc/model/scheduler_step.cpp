// Scheduler::step: schedule -> one engine forward -> sample -> postprocess (appending tokens,
// stop conditions, starting a request's n samples, freeing finished sequences).
#include <algorithm>

#include "llama4/error.h"
#include "llama4/ops.h"
#include "llama4/scheduler.h"
#include "model/sample_rows.h"
#include "model/scheduler_state.h"

namespace llama4 {

std::vector<SampleOutput> Scheduler::step() {
  std::vector<SampleOutput> out;
  apply_inbox(out);
  std::vector<Sequence*> batch;
  std::vector<int64_t> chunk;
  schedule(batch, chunk);
  if (!batch.empty()) run(batch, chunk, out);
  stats_.waiting = int64_t(waiting_.size());
  stats_.running = int64_t(running_.size());
  std::lock_guard<std::mutex> lock(inbox_->mutex);
  inbox_->published = stats_;
  return out;
}

void Scheduler::run(const std::vector<Sequence*>& batch, const std::vector<int64_t>& chunk,
                    std::vector<SampleOutput>& out) {
  ++stats_.steps;

  const int32_t image_id = int32_t(engine_.options().image_token_id);
  std::vector<StepRequest> reqs(batch.size());
  std::vector<Sequence*> ready;  // sequences whose next token is drawn in this step, in row order
  for (size_t b = 0; b < batch.size(); ++b) {
    Sequence* s = batch[b];
    StepRequest& r = reqs[b];
    r.seq = s->kv;
    r.tokens.assign(s->tokens.begin() + s->computed, s->tokens.begin() + s->computed + chunk[b]);
    const bool completes = s->computed + chunk[b] == int64_t(s->tokens.size());
    r.logits = completes ? LogitRows::Last : LogitRows::None;
    if (completes) ready.push_back(s);
    if (s->image_rows_done < s->req->image_rows) {  // this chunk's share of the prompt's image rows
      const int64_t k = std::count(r.tokens.begin(), r.tokens.end(), image_id);
      if (k > 0) r.image_features = s->req->r.image_features.view().slice0(s->image_rows_done, s->image_rows_done + k);
      s->image_rows_done += k;
    }
  }
  const Tensor logits = engine_.step(reqs);  // [ready.size(), V] float32, in batch order
  for (size_t b = 0; b < batch.size(); ++b) {
    batch[b]->computed += chunk[b];
    stats_.computed_tokens += chunk[b];
  }
  if (!ready.empty()) sample_and_postprocess(ready, logits, out);
}

namespace {
bool is_stop(const GenerationRequest& r, int32_t token) {
  return std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), token) != r.stop_token_ids.end();
}
}  // namespace

void Scheduler::sample_and_postprocess(const std::vector<Sequence*>& ready, const Tensor& logits,
                                       std::vector<SampleOutput>& out) {
  // One row per ready sequence; a request's first draw gives its n samples from one logits row.
  std::vector<SampleRow> rows;
  for (size_t i = 0; i < ready.size(); ++i) {
    const Sequence* s = ready[i];
    const Request* req = s->req;
    const int32_t first = req->started ? s->sample : 0;
    const int32_t count = req->started ? 1 : req->r.n;
    for (int32_t k = first; k < first + count; ++k)
      rows.push_back({int64_t(i), &req->r.sampling, req->seed, k, s->generated(), &s->tokens, s->prompt_len});
  }
  const std::vector<SampledToken> drawn = sample_rows(engine_.context(), logits, rows, sample_workspace_);

  size_t at = 0;
  for (size_t i = 0; i < ready.size(); ++i) {
    Sequence* s = ready[i];
    Request* req = s->req;
    const size_t count = req->started ? 1 : size_t(req->r.n);
    std::vector<SampleOutput> outs(count);
    for (size_t j = 0; j < count; ++j) {
      outs[j].request_id = req->id;
      outs[j].sample = int32_t(rows[at + j].sample);
    }
    if (drawn[at].status != 0) {  // the row is broken for all the samples drawn from it
      for (SampleOutput& o : outs) {
        o.finish = FinishReason::Error;
        o.error = detail::concat("request ", req->id, " sample ", o.sample, ": the logits for generated token ",
                                 s->generated(), " (engine step ", stats_.steps,
                                 ") are unusable: ", sample_status_message(drawn[at].status),
                                 "; the model's numbers are broken, check the checkpoint's weights");
        out.push_back(std::move(o));
      }
      at += count;
      end_sequence(s);
      continue;
    }
    for (size_t j = 0; j < count; ++j) {
      const SampledToken& d = drawn[at + j];
      SampleOutput& o = outs[j];
      o.tokens.push_back(d.token);
      if (req->r.sampling.logprobs >= 0) o.logprobs.push_back(d.logprobs);
      if (req->r.return_logits) o.logits = ops::contiguous(engine_.context(), logits.view().slice0(int64_t(i), int64_t(i) + 1));
      if (is_stop(req->r, d.token)) o.finish = FinishReason::Stop;
      else if (s->generated() + 1 >= req->r.max_new_tokens) o.finish = FinishReason::Length;
    }
    at += count;
    stats_.generated_tokens += int64_t(count);
    if (!req->started) {
      std::vector<int32_t> first_tokens;
      for (const SampleOutput& o : outs) first_tokens.push_back(o.tokens[0]);
      start_samples(s, first_tokens);
    }
    s->tokens.push_back(outs[0].tokens[0]);
    const FinishReason f = outs[0].finish;
    for (SampleOutput& o : outs) out.push_back(std::move(o));
    if (f != FinishReason::None) end_sequence(s);
  }
}

// The request's first draw: sample 0 continues in `first`; samples 1..n-1 get sequences of their
// own that share the prompt's KV pages (or, when no page is free for the copy of the partial last
// page or the batch is full, prefill the prompt again later).
void Scheduler::start_samples(Sequence* first, const std::vector<int32_t>& tokens) {
  Request* req = first->req;
  req->started = true;
  KVCache& cache = engine_.cache();
  std::vector<Sequence*> queued;
  for (size_t k = 1; k < tokens.size(); ++k) {
    const bool done = is_stop(req->r, tokens[k]) || req->r.max_new_tokens <= 1;
    if (done) continue;  // its one output (with its finish reason) is already reported
    auto* s = new Sequence;
    s->req = req;
    s->sample = int32_t(k);
    s->tokens.assign(first->tokens.begin(), first->tokens.begin() + first->prompt_len);
    s->tokens.push_back(tokens[k]);
    s->prompt_len = first->prompt_len;
    ++req->live;
    const bool room = int64_t(running_.size()) < options_.max_batch;
    if (room) {
      try {
        s->kv = cache.fork_sequence(first->kv);
        s->computed = first->computed;
        s->image_rows_done = first->image_rows_done;
        running_.push_back(s);
        continue;
      } catch (const CacheFullError&) {  // no page for the copy: prefill it again later
      }
    }
    queued.push_back(s);
  }
  waiting_.insert(waiting_.begin(), queued.begin(), queued.end());
}

}  // namespace llama4
