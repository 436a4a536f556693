// What a generation uses when its caller does not say: the rules Python's generate(), the server
// and the C++ generate example share (one place for them).
//   default_sampling   greedy, unless generation_config.json says do_sample: then its temperature
//                      (1 when unset), top_k (0: off) and top_p (1: off)
//   default_stop_ids   generation_config.json's eos_token_id, else config.json's, else Llama 4's
//                      end-of-text / end-of-message / end-of-turn when the vocabulary has them
#pragma once
#include <cstdint>
#include <vector>

#include "llama4/model_config.h"
#include "llama4/sampling.h"

namespace llama4 {

SamplingParams default_sampling(const GenerationConfig& generation);
std::vector<int32_t> default_stop_ids(const GenerationConfig& generation, const ModelConfig& config);

}  // namespace llama4
