// The one check of the sampling parameter fields, shared by SamplingParams::validate and the
// sample op's per-row check (messages start with `who`: "SamplingParams" or "sample: row 3").
#pragma once
#include <cstdint>
#include <string>

namespace llama4::detail {

struct SamplingFields {
  float temperature;
  int32_t top_k;
  float top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty;
  int32_t logprobs;
};
void check_sampling_fields(const std::string& who, const SamplingFields& f);

}  // namespace llama4::detail
