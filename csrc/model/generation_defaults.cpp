#include "llama4/generation_defaults.h"

#include "llama4/tokenizer.h"

namespace llama4 {

SamplingParams default_sampling(const GenerationConfig& generation) {
  SamplingParams p;  // greedy
  if (generation.do_sample.value_or(false)) {
    p.temperature = float(generation.temperature.value_or(1.0));
    p.top_k = int32_t(generation.top_k.value_or(0));
    p.top_p = float(generation.top_p.value_or(1.0));
  }
  return p;
}

std::vector<int32_t> default_stop_ids(const GenerationConfig& generation, const ModelConfig& config) {
  const IntOrList& eos = generation.eos_token_id.is_null() ? config.eos_token_id : generation.eos_token_id;
  if (!eos.is_null()) return std::vector<int32_t>(eos.values.begin(), eos.values.end());
  if (config.text.vocab_size > token_ids::kEot)
    return {token_ids::kEndOfText, token_ids::kEom, token_ids::kEot};
  return {};
}

}  // namespace llama4
