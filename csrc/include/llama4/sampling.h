// The sampler: next tokens for a batch of rows of logits, one call per engine step, with
// per-row parameters, penalties, seeds and logprobs. CPU kernel: cpu/sampling*.cpp; CUDA twin:
// cuda/sampling.cu. Both give the SAME token for the same logits, parameters and seed (below).
//
// Semantics (vLLM's names and meanings; the order of transformers' logits processors):
//   1. penalties on the logits x -> y:
//        repetition (CTRL / HF): for every token in the prompt OR the generated output,
//          y = y > 0 ? y / repetition_penalty : y * repetition_penalty;
//        then, for every token generated count > 0 times (OpenAI; generated tokens only):
//          y = y - count * frequency_penalty;  y = y - presence_penalty.
//   2. greedy when temperature == 0, or when y / temperature overflows float for some finite y
//      (a temperature so small that it leaves no distribution): argmax y, ties -> lowest id.
//   3. otherwise s = (y - max y) / temperature, w = exp(s); keep the top_k tokens of largest y
//      (ties: lower id first), then of those the smallest prefix (same order) whose mass reaches
//      top_p of the top-k mass, then the tokens with w >= min_p (w of the best token is 1);
//      draw one token with probability proportional to w among the kept ones.
// Logprobs are those of the RAW model distribution: log_softmax of the logits before penalties
// and temperature (vLLM's default "raw_logprobs"). logprobs = 0 reports the chosen token's;
// logprobs = N in 1..20 also the N most likely tokens (ties: lower id first), best first.
//
// Seeding contract: each draw uses one Philox4x32-10 block (llama4/philox.h) with
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (token_index & 0xffffffff, token_index >> 32, sample_index, 0)
// where token_index counts the tokens this sample of the request generated before this one
// (0 for its first; it keeps counting across a preemption) and sample_index is the sample's
// number among the request's n samples. A draw therefore depends on (seed, sample index,
// token index) and the row's logits only: never on the other rows, the row order or the device.
// Unseeded requests get a seed from their caller (the scheduler draws one per request).
//
// Why CPU and CUDA pick the same token (by construction, not by tolerance):
//   - every per-token value is computed with the same correctly rounded IEEE operations in the
//     same order on both devices (no FMA contraction; e^s is one float polynomial with explicit
//     FMAs, within 1 ulp; the shared code is core/sampling_arith.h);
//   - the weights are fixed point: W = floor(w * 2^F), F = 63 - ceil(log2 V), so every sum of
//     weights (top-p mass, the total, prefix sums) is an exact integer whatever the summation
//     order or thread count; truncation moves the distribution by at most V * 2^-F / sum(w)
//     <= 2^(2 ceil(log2 V) - 63) in total variation (2^-27 at V = 202048);
//   - top-k and top-p are boundaries in one total order (y descending, id ascending) found
//     by exact selection (a radix select over order-preserving keys, no sort of the vocabulary);
//   - the draw is an inverse CDF in token-id order over the kept tokens with the exact integer
//     target floor(u64 * total / 2^64), u64 = (r1 << 32) | r0 from the Philox block.
// The logprobs are bit-identical too: log-sum-exp from the exact integer sum of fixed-point
// weights, and a log computed with explicit double operations.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "llama4/philox.h"
#include "llama4/tensor.h"

namespace llama4 {

// Largest top-N logprobs per token (OpenAI's limit).
constexpr int kMaxLogprobs = 20;

// Per-request sampling parameters (vLLM's names). Defaults turn every option off.
struct SamplingParams {
  float temperature = 0.0f;         // 0 = greedy; finite, >= 0
  int32_t top_k = 0;                // 0 = off; >= 0
  float top_p = 1.0f;               // 1 = off; in (0, 1]
  float min_p = 0.0f;               // 0 = off; in [0, 1)
  float repetition_penalty = 1.0f;  // 1 = off; finite, > 0 (prompt and generated tokens)
  float presence_penalty = 0.0f;    // in [-2, 2] (generated tokens)
  float frequency_penalty = 0.0f;   // in [-2, 2] (generated tokens)
  std::optional<uint64_t> seed;     // none: the caller picks one per request
  int32_t logprobs = -1;            // -1 none; 0 the chosen token's; N in 1..20: also the top N

  bool greedy() const { return temperature == 0.0f; }
  bool has_penalties() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }
  // Throws ValueError naming the field and its value, e.g. "SamplingParams: 'top_p' must be in
  // (0, 1], got 1.5".
  void validate() const;
};

// Status of a row after sampling (the row's token is -1 and its logprobs NaN unless kOk).
enum class SampleStatus : int32_t {
  kOk = 0,
  kNonFinite = 1,        // the logits hold NaN or +inf
  kNoFiniteLogit = 2,    // every logit is -inf (after penalties)
  kPenaltyOverflow = 3,  // a penalty turned a finite logit into +inf or NaN
};
const char* sample_status_message(int32_t status);  // "logits hold NaN or +inf", ...

// One row of a sampling batch, flat and trivially copyable: the same bytes on host and device.
struct SamplerRow {
  float temperature = 0.0f, top_p = 1.0f, min_p = 0.0f;
  float repetition_penalty = 1.0f, presence_penalty = 0.0f, frequency_penalty = 0.0f;
  int32_t top_k = 0;
  int32_t logprobs = -1;
  uint64_t seed = 0;
  int64_t token_index = 0;   // see the seeding contract above
  int32_t sample_index = 0;  // see the seeding contract above
  int32_t reserved = 0;
};
static_assert(sizeof(SamplerRow) == 56, "SamplerRow is uploaded as-is: keep it packed");

// The row of params p; `seed` is used when p.seed is unset.
SamplerRow make_sampler_row(const SamplingParams& p, uint64_t seed, int32_t sample_index,
                            int64_t token_index);

// A batch of rows in the flat form both devices read (the CUDA op uploads these arrays as-is).
// Penalty data is CSR: row r owns entries [penalty_offsets[r], penalty_offsets[r + 1]), one per
// distinct token that occurs in the row's prompt or generated output, token ids strictly
// increasing within a row. Rows without active penalties may have no entries.
struct SamplerBatch {
  std::vector<SamplerRow> rows;               // [B]
  std::vector<int32_t> penalty_offsets{0};    // [B + 1]
  std::vector<int32_t> penalty_tokens;        // [nnz] token ids
  std::vector<int32_t> penalty_counts;        // [nnz] occurrences in the generated output (>= 0)
  std::vector<uint8_t> penalty_in_prompt;     // [nnz] 1: occurs in the prompt

  int64_t size() const { return int64_t(rows.size()); }
  void clear();
  // Appends a row without penalty entries.
  void add_row(const SamplerRow& row);
  // Appends a row with the entries of its prompt and generated tokens (built only when the row
  // has an active penalty; O((P + G) log(P + G))). A scheduler that keeps per-request counts can
  // instead push the entries itself.
  void add_row(const SamplerRow& row, const int32_t* prompt, int64_t prompt_len,
               const int32_t* generated, int64_t generated_len);
};

// The uniform 64-bit draw of the seeding contract above.
LLAMA4_HD uint64_t sampler_draw_bits(uint64_t seed, int32_t sample_index, int64_t token_index) {
  const Philox4x32 ctr{{uint32_t(uint64_t(token_index)), uint32_t(uint64_t(token_index) >> 32),
                        uint32_t(sample_index), 0u}};
  const Philox4x32 r = philox4x32_10(ctr, uint32_t(seed), uint32_t(seed >> 32));
  return (uint64_t(r.v[1]) << 32) | r.v[0];
}

}  // namespace llama4

namespace llama4::ops {

// Samples one token per row of `logits` [B, V] float32 (rows may be strided; the last dim is
// read contiguous) with the parameters of batch.rows[r]. Outputs (contiguous, on logits' device):
//   tokens       [B] int32: the token, or -1 where status != 0
//   logprobs     [B] float32: the chosen token's raw logprob (NaN where status != 0 or the row
//                has logprobs = -1); may be undefined when no row asks for logprobs
//   top_ids      [B, N] int32 and top_logprobs [B, N] float32 with N >= the largest row logprobs;
//                row r fills its first logprobs[r] entries best first, the rest are -1 / -inf;
//                may be undefined (N = 0) when no row asks for N >= 1
//   status       [B] int32: SampleStatus per row (a bad row never affects the others)
// Invalid parameters or penalty data raise ValueError naming the row and field.
// CUDA: no host synchronization; `workspace` is a uint8 tensor of at least
// sample_workspace_bytes() on the same device, or undefined (the op then allocates its own, and
// freeing it synchronizes).
void sample(const TensorView& tokens, const TensorView& logprobs, const TensorView& top_ids,
            const TensorView& top_logprobs, const TensorView& status, const TensorView& logits,
            const SamplerBatch& batch, const TensorView& workspace = {});
// Scratch bytes sample() needs on `device` for this batch over a vocabulary of `vocab` (0 on CPU).
int64_t sample_workspace_bytes(Device device, int64_t vocab, const SamplerBatch& batch);

}  // namespace llama4::ops
