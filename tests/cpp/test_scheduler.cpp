// The scheduler from C++ alone: a tiny random model built in memory, greedy requests that do not
// all fit in the KV cache (preemption by recompute must give each the tokens it gets alone), n
// samples on forked KV pages, cancellation, a request too large for the cache, and no page leaks.
#include <cmath>
#include <map>
#include <vector>

#include "check.h"
#include "llama4/error.h"
#include "llama4/scheduler.h"

namespace {

using namespace llama4;

struct TinyModel {
  TextConfig config;
  std::vector<std::vector<float>> storage;
  WeightMap weights;

  TinyModel() {
    TextConfig& c = config;
    c.vocab_size = 300;
    c.hidden_size = 32;
    c.intermediate_size = 16;
    c.intermediate_size_mlp = 48;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 8;
    c.num_local_experts = 4;
    c.num_experts_per_tok = 1;
    c.moe_layers = {0};
    c.no_rope_layers = {1, 0};  // a chunked-local RoPE layer and a global NoPE layer
    c.attention_chunk_size = 8;
    c.floor_scale = 4;
    c.max_position_embeddings = 128;
    uint64_t s = 0x9E3779B97F4A7C15ull;  // a fixed LCG: the same weights every run
    auto next = [&s] {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      return float((s >> 40) & 0xFFFFFF) / float(1 << 24) * 2.0f - 1.0f;
    };
    for (const auto& [name, shape] : expected_text_weights(c)) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      const bool norm = name.find("norm") != std::string::npos;
      const float scale = norm ? 0.0f : 1.7f / std::sqrt(float(shape.back()));
      storage.emplace_back(size_t(n));
      for (float& v : storage.back()) v = (norm ? 1.0f : 0.0f) + scale * next();
      weights.emplace(name, TensorView(storage.back().data(), DType::F32, shape));
    }
  }

  Engine engine(int64_t kv_bytes, int max_sequences = 4) const {
    EngineOptions o;
    o.page_size = 4;
    o.kv_cache_bytes = kv_bytes;
    o.max_sequences = max_sequences;
    return Engine(config, DType::F32, weights, o);
  }
};

const TinyModel& tiny() {
  static const TinyModel m;
  return m;
}

std::vector<int32_t> prompt(int seed, int n) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(int32_t((seed * 131 + i * 37) % 290 + 3));
  return p;
}

GenerationRequest greedy(std::vector<int32_t> ids, int64_t new_tokens) {
  GenerationRequest r;
  r.prompt = std::move(ids);
  r.max_new_tokens = new_tokens;
  return r;
}

// Runs until done; tokens per (request, sample).
std::map<std::pair<int64_t, int32_t>, std::vector<int32_t>> run(Scheduler& s) {
  std::map<std::pair<int64_t, int32_t>, std::vector<int32_t>> got;
  for (int steps = 0; s.has_unfinished(); ++steps) {
    CHECK(steps < 10000);
    if (steps >= 10000) break;
    for (const SampleOutput& o : s.step()) {
      CHECK(o.finish != FinishReason::Error);
      auto& t = got[{o.request_id, o.sample}];
      t.insert(t.end(), o.tokens.begin(), o.tokens.end());
    }
  }
  return got;
}

std::vector<int32_t> alone(const std::vector<int32_t>& ids, int64_t new_tokens) {
  Engine e = tiny().engine(1 << 20);
  Scheduler s(e);
  const int64_t id = s.add_request(greedy(ids, new_tokens));
  return run(s)[{id, 0}];
}

int64_t free_pages(const Engine& e) { return e.cache().free_pages(0) + e.cache().free_pages(1); }

TEST_CASE(preemption_by_recompute_gives_the_tokens_of_each_request_alone) {
  Engine e = tiny().engine(12 * 1024);  // a few dozen tokens of KV: four requests cannot all fit
  Scheduler s(e);
  const int64_t free = free_pages(e);
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(s.add_request(greedy(prompt(i, 9 + i), 20)));
  auto got = run(s);
  for (int i = 0; i < 4; ++i) CHECK((got[{ids[size_t(i)], 0}] == alone(prompt(i, 9 + i), 20)));
  CHECK(s.stats().preemptions > 0);
  CHECK_EQ(free_pages(e), free);
}

TEST_CASE(n_samples_fork_the_prompt_pages) {
  Engine e = tiny().engine(1 << 20);
  Scheduler s(e);
  GenerationRequest r = greedy(prompt(7, 10), 12);  // 10 tokens: the last page is partly filled
  r.n = 3;
  const int64_t id = s.add_request(r);
  auto got = run(s);
  const std::vector<int32_t> want = alone(prompt(7, 10), 12);
  for (int32_t k = 0; k < 3; ++k) CHECK((got[{id, k}] == want));  // greedy: every sample the same
  CHECK_EQ(free_pages(e), e.cache().total_pages(0) + e.cache().total_pages(1));
}

TEST_CASE(cancel_frees_the_pages) {
  Engine e = tiny().engine(1 << 20);
  Scheduler s(e);
  const int64_t a = s.add_request(greedy(prompt(1, 12), 50));
  s.step();
  CHECK(e.cache().free_pages(1) < e.cache().total_pages(1));
  CHECK(s.cancel(a));
  CHECK(!s.cancel(a));
  s.step();
  CHECK(!s.has_unfinished());
  CHECK_EQ(free_pages(e), e.cache().total_pages(0) + e.cache().total_pages(1));
}

TEST_CASE(a_request_too_large_for_the_cache_is_refused_at_once) {
  Engine e = tiny().engine(12 * 1024);
  Scheduler s(e);
  CHECK_THROWS(s.add_request(greedy(prompt(2, 100), 20)), CacheFullError, "KV cache full");
  CHECK(!s.has_unfinished());
  CHECK_THROWS(s.add_request(greedy({}, 2)), ValueError, "at least one token");
  CHECK_THROWS(s.add_request(greedy({1, 300}, 2)), ValueError, "outside the vocabulary");
}

}  // namespace

int main() { return check::run_all(); }
