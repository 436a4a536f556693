// SamplingParams validation, SamplerRow / SamplerBatch construction and status messages
// (llama4/sampling.h). The field rules live here once: SamplingParams::validate and the op
// entry's per-row check (ops/sampling.cpp) both call check_sampling_fields.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/sampling_fields.h"
#include "llama4/error.h"
#include "llama4/sampling.h"

namespace llama4 {

namespace detail {

void check_sampling_fields(const std::string& who, const SamplingFields& f) {
  auto bad = [&](const char* name, auto value, const char* rule) {
    throw ValueError(concat(who, ": '", name, "' must be ", rule, ", got ", value));
  };
  if (!(std::isfinite(f.temperature) && f.temperature >= 0.0f))
    bad("temperature", f.temperature, "a finite number >= 0 (0 = greedy)");
  if (f.top_k < 0) bad("top_k", f.top_k, "an integer >= 0 (0 = off)");
  if (!(f.top_p > 0.0f && f.top_p <= 1.0f)) bad("top_p", f.top_p, "in (0, 1] (1 = off)");
  if (!(f.min_p >= 0.0f && f.min_p < 1.0f)) bad("min_p", f.min_p, "in [0, 1) (0 = off)");
  if (!(std::isfinite(f.repetition_penalty) && f.repetition_penalty > 0.0f))
    bad("repetition_penalty", f.repetition_penalty, "a finite number > 0 (1 = off)");
  if (!(f.presence_penalty >= -2.0f && f.presence_penalty <= 2.0f))
    bad("presence_penalty", f.presence_penalty, "in [-2, 2]");
  if (!(f.frequency_penalty >= -2.0f && f.frequency_penalty <= 2.0f))
    bad("frequency_penalty", f.frequency_penalty, "in [-2, 2]");
  if (f.logprobs < -1 || f.logprobs > kMaxLogprobs)
    bad("logprobs", f.logprobs, "in [-1, 20] (-1 = none, 0 = the chosen token's)");
}

}  // namespace detail

void SamplingParams::validate() const {
  detail::check_sampling_fields(
      "SamplingParams", {temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty,
                         frequency_penalty, logprobs});
}

const char* sample_status_message(int32_t status) {
  switch (SampleStatus(status)) {
    case SampleStatus::kOk: return "ok";
    case SampleStatus::kNonFinite: return "the logits hold NaN or +inf";
    case SampleStatus::kNoFiniteLogit: return "every logit is -inf";
    case SampleStatus::kPenaltyOverflow: return "a penalty made a logit +inf or NaN";
  }
  return "unknown sampling status";
}

SamplerRow make_sampler_row(const SamplingParams& p, uint64_t seed, int32_t sample_index,
                            int64_t token_index) {
  SamplerRow r;
  r.temperature = p.temperature;
  r.top_p = p.top_p;
  r.min_p = p.min_p;
  r.repetition_penalty = p.repetition_penalty;
  r.presence_penalty = p.presence_penalty;
  r.frequency_penalty = p.frequency_penalty;
  r.top_k = p.top_k;
  r.logprobs = p.logprobs;
  r.seed = p.seed.value_or(seed);
  r.token_index = token_index;
  r.sample_index = sample_index;
  return r;
}

void SamplerBatch::clear() {
  rows.clear();
  penalty_offsets.assign(1, 0);
  penalty_tokens.clear();
  penalty_counts.clear();
  penalty_in_prompt.clear();
}

void SamplerBatch::add_row(const SamplerRow& row) {
  rows.push_back(row);
  penalty_offsets.push_back(int32_t(penalty_tokens.size()));
}

void SamplerBatch::add_row(const SamplerRow& row, const int32_t* prompt, int64_t prompt_len,
                           const int32_t* generated, int64_t generated_len) {
  const bool active = row.repetition_penalty != 1.0f || row.presence_penalty != 0.0f ||
                      row.frequency_penalty != 0.0f;
  if (!active) return add_row(row);
  // (token, from_generated) pairs sorted by token: each run is one entry.
  std::vector<std::pair<int32_t, bool>> seen;
  seen.reserve(size_t(prompt_len + generated_len));
  for (int64_t i = 0; i < prompt_len; ++i) seen.push_back({prompt[i], false});
  for (int64_t i = 0; i < generated_len; ++i) seen.push_back({generated[i], true});
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < seen.size();) {
    size_t j = i;
    int32_t count = 0;
    bool in_prompt = false;
    for (; j < seen.size() && seen[j].first == seen[i].first; ++j) {
      count += seen[j].second;
      in_prompt |= !seen[j].second;
    }
    penalty_tokens.push_back(seen[i].first);
    penalty_counts.push_back(count);
    penalty_in_prompt.push_back(in_prompt);
    i = j;
  }
  rows.push_back(row);
  penalty_offsets.push_back(int32_t(penalty_tokens.size()));
}

}  // namespace llama4
