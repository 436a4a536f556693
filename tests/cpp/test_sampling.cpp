// The sampler (llama4/sampling.h) through the public C++ API, as the scheduler calls it: the
// SamplerBatch CSR built by add_row, the checks a C++ caller meets that Python cannot reach
// (malformed CSR, bad rows: ValueError, never a crash), and small results worked out by hand.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.h"
#include "llama4/error.h"
#include "llama4/sampling.h"
#include "llama4/tensor.h"

using namespace llama4;

namespace {

struct Out {
  std::vector<int32_t> tokens, status, top_ids;
  std::vector<float> logprobs, top_lps;
  explicit Out(int64_t B, int64_t N = 0)
      : tokens(B, 7), status(B, 7), top_ids(B * N, 7), logprobs(B, 7), top_lps(B * N, 7) {}
};

// Runs ops::sample on logits [B, V] (row-major) and returns the outputs.
Out run(std::vector<float>& logits, int64_t V, const SamplerBatch& batch, int64_t N = 0) {
  const int64_t B = int64_t(logits.size()) / V;
  Out o(B, N);
  ops::sample(TensorView(o.tokens.data(), DType::I32, {B}), TensorView(o.logprobs.data(), DType::F32, {B}),
              N ? TensorView(o.top_ids.data(), DType::I32, {B, N}) : TensorView(),
              N ? TensorView(o.top_lps.data(), DType::F32, {B, N}) : TensorView(),
              TensorView(o.status.data(), DType::I32, {B}), TensorView(logits.data(), DType::F32, {B, V}),
              batch);
  return o;
}

SamplerRow row_with(float temperature, float rep = 1.0f, int32_t logprobs = -1) {
  SamplingParams p;
  p.temperature = temperature;
  p.repetition_penalty = rep;
  p.logprobs = logprobs;
  return make_sampler_row(p, 0, 0, 0);
}

}  // namespace

TEST_CASE(params_validate_names_the_field) {
  SamplingParams p;
  p.validate();  // the defaults are valid
  p.top_p = 1.5f;
  CHECK_THROWS(p.validate(), ValueError, "SamplingParams", "'top_p'", "1.5");
  p = SamplingParams();
  p.temperature = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS(p.validate(), ValueError, "'temperature'");
  p = SamplingParams();
  p.logprobs = 21;
  CHECK_THROWS(p.validate(), ValueError, "'logprobs'", "21");
  p = SamplingParams();
  p.top_k = -3;
  CHECK_THROWS(p.validate(), ValueError, "'top_k'");
}

TEST_CASE(add_row_builds_one_sorted_entry_per_distinct_token) {
  SamplerBatch b;
  const std::vector<int32_t> prompt = {5, 3, 5}, generated = {3, 7, 7};
  b.add_row(row_with(0.0f, 1.2f), prompt.data(), 3, generated.data(), 3);
  b.add_row(row_with(0.0f), prompt.data(), 3, generated.data(), 3);  // no active penalty: no entries
  CHECK_EQ(b.size(), int64_t(2));
  CHECK(b.penalty_offsets == std::vector<int32_t>({0, 3, 3}));
  CHECK(b.penalty_tokens == std::vector<int32_t>({3, 5, 7}));
  CHECK(b.penalty_counts == std::vector<int32_t>({1, 0, 2}));
  CHECK(b.penalty_in_prompt == std::vector<uint8_t>({1, 1, 0}));
  b.clear();
  CHECK_EQ(b.size(), int64_t(0));
  CHECK(b.penalty_offsets == std::vector<int32_t>({0}));
}

TEST_CASE(greedy_penalties_and_logprobs_by_hand) {
  // Row 0: repetition 1.1 on token 0 (3.0 / 1.1 = 2.727 < 2.9) moves greedy to token 1.
  // Row 1: logits log(1), log(2), log(5) -> logprobs log(p) with p = 0.125, 0.25, 0.625.
  std::vector<float> x = {3.0f, 2.9f, 0.0f, 0.0f, std::log(2.0f), std::log(5.0f)};
  SamplerBatch b;
  const int32_t prompt0[] = {0};
  b.add_row(row_with(0.0f, 1.1f, 0), prompt0, 1, nullptr, 0);
  b.add_row(row_with(0.0f, 1.0f, 3));
  const Out o = run(x, 3, b, 3);
  CHECK(o.status == std::vector<int32_t>({0, 0}));
  CHECK(o.tokens == std::vector<int32_t>({1, 2}));
  CHECK_NEAR(o.logprobs[1], std::log(0.625), 1e-6);
  CHECK(o.top_ids[0] == -1 && std::isinf(o.top_lps[0]));  // row 0 asked for logprobs = 0
  CHECK_EQ(o.top_ids[3], 2);
  CHECK_EQ(o.top_ids[4], 1);
  CHECK_EQ(o.top_ids[5], 0);
  CHECK_NEAR(o.top_lps[4], std::log(0.25), 1e-6);
  CHECK_NEAR(o.top_lps[5], std::log(0.125), 1e-6);
  // Row 0's logprob is the raw model's (before the penalty): softmax of (3, 2.9, 0) at token 1.
  const double z = std::exp(3.0) + std::exp(2.9) + 1.0;
  CHECK_NEAR(o.logprobs[0], 2.9 - std::log(z), 1e-6);
}

TEST_CASE(uniform_row_draws_the_contracts_token) {
  // Equal logits: every token has weight 2^F, so the draw is token floor(u * V / 2^64).
  const int64_t V = 10;
  std::vector<float> x(size_t(V) * 4, 0.25f);
  SamplerBatch b;
  const uint64_t seeds[] = {0, 1, 42, 0xFFFFFFFFFFFFFFFFull};
  for (int r = 0; r < 4; ++r) {
    SamplerRow row = row_with(0.7f);
    row.seed = seeds[r];
    row.sample_index = r;
    row.token_index = 1000 + r;
    b.add_row(row);
  }
  const Out o = run(x, V, b);
  for (int r = 0; r < 4; ++r) {
    const unsigned __int128 u = sampler_draw_bits(seeds[r], r, 1000 + r);
    CHECK_EQ(o.tokens[size_t(r)], int32_t((u * unsigned(V)) >> 64));
    CHECK_EQ(o.status[size_t(r)], 0);
  }
}

TEST_CASE(non_finite_rows_get_a_status_not_a_token) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1.0f, nan, 0.0f, inf, 0.0f, 0.0f, -inf, -inf, -inf};
  SamplerBatch b;
  for (int r = 0; r < 3; ++r) b.add_row(row_with(1.0f));
  const Out o = run(x, 3, b);
  CHECK(o.status == std::vector<int32_t>({int32_t(SampleStatus::kNonFinite), int32_t(SampleStatus::kNonFinite),
                                          int32_t(SampleStatus::kNoFiniteLogit)}));
  CHECK(o.tokens == std::vector<int32_t>({-1, -1, -1}));
}

TEST_CASE(malformed_penalty_csr_raises_value_error) {
  std::vector<float> x(2 * 8, 0.0f);
  auto good = [] {
    SamplerBatch b;
    const int32_t p0[] = {1, 4}, p1[] = {2};
    b.add_row(row_with(0.0f, 1.3f), p0, 2, nullptr, 0);
    b.add_row(row_with(0.0f, 1.3f), p1, 1, nullptr, 0);
    return b;
  };
  run(x, 8, good());  // the well-formed batch runs
  SamplerBatch b = good();
  b.penalty_offsets.pop_back();
  CHECK_THROWS(run(x, 8, b), ValueError, "penalty_offsets", "B + 1");
  b = good();
  b.penalty_offsets = {0, 3, 2};
  CHECK_THROWS(run(x, 8, b), ValueError, "penalty_offsets", "from 0 to 3");
  b = good();
  b.penalty_offsets = {0, 5, 3};  // row 0 would read past the entries: rejected before any read
  CHECK_THROWS(run(x, 8, b), ValueError, "penalty_offsets", "must not decrease");
  b = good();
  b.penalty_offsets = {1, 2, 3};
  CHECK_THROWS(run(x, 8, b), ValueError, "penalty_offsets", "from 0");
  b = good();
  b.penalty_tokens[1] = 1;  // row 0: 1, 1
  CHECK_THROWS(run(x, 8, b), ValueError, "row 0", "strictly increase");
  b = good();
  b.penalty_tokens[2] = 8;
  CHECK_THROWS(run(x, 8, b), ValueError, "row 1", "outside the vocabulary");
  b = good();
  b.penalty_tokens[0] = -1;
  CHECK_THROWS(run(x, 8, b), ValueError, "row 0", "outside the vocabulary");
  b = good();
  b.penalty_counts[0] = -2;
  CHECK_THROWS(run(x, 8, b), ValueError, "count", "-2");
  b = good();
  b.penalty_in_prompt.pop_back();
  CHECK_THROWS(run(x, 8, b), ValueError, "penalty_in_prompt");
}

TEST_CASE(bad_rows_and_outputs_raise) {
  std::vector<float> x(2 * 8, 0.0f);
  SamplerBatch b;
  b.add_row(row_with(1.0f));
  b.add_row(row_with(1.0f));
  b.rows[1].top_p = 0.0f;  // rows bypass SamplingParams::validate: the op checks them again
  CHECK_THROWS(run(x, 8, b), ValueError, "row 1", "'top_p'");
  b.rows[1] = row_with(1.0f);
  b.rows[1].token_index = -1;
  CHECK_THROWS(run(x, 8, b), ValueError, "row 1", "token_index");
  b.rows[1] = row_with(1.0f);
  b.add_row(row_with(1.0f));  // 3 rows for 2 rows of logits
  CHECK_THROWS(run(x, 8, b), ValueError, "3 rows");
  b.clear();
  b.add_row(row_with(1.0f, 1.0f, 4));  // asks for 4 top logprobs, none given room
  b.add_row(row_with(1.0f));
  CHECK_THROWS(run(x, 8, b), ValueError, "top");
}

int main() { return check::run_all(); }
