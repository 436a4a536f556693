// The scheduler's one call into the sampler per step (not installed): the rows to draw from,
// each with its parameters, its random-number key and the token history its penalties need.
#pragma once
#include <cstdint>
#include <vector>

#include "llama4/context.h"
#include "llama4/sampling.h"
#include "llama4/scheduler.h"
#include "llama4/tensor.h"

namespace llama4 {

struct SampleRow {
  int64_t logits_row = 0;  // row of the step's logits (several samples may draw from one row)
  const SamplingParams* params = nullptr;
  uint64_t seed = 0;
  int32_t sample = 0;       // sample index within the request (the seeding contract's)
  int64_t token_index = 0;  // index of the token being drawn among the sample's generated ones
  const std::vector<int32_t>* tokens = nullptr;  // prompt + generated so far (penalties)
  int64_t prompt_len = 0;
};

struct SampledToken {
  int32_t token = -1;
  int32_t status = 0;      // SampleStatus: not kOk means the row's logits were unusable
  TokenLogprobs logprobs;  // filled when params->logprobs >= 0
};

// logits: [R, V] float32 on the engine's device (ctx's). One batched sampler call for all rows,
// on that device: on a GPU only the tokens (and the logprobs asked for) come back to the host.
// `workspace`: the sampler's scratch on that device, kept by the caller across steps and grown
// here when a batch needs more (on CUDA a fresh one per call would synchronize when freed).
std::vector<SampledToken> sample_rows(const Context& ctx, const TensorView& logits,
                                      const std::vector<SampleRow>& rows, Tensor& workspace);

}  // namespace llama4
