// See engine_demo.h.
#include "engine_demo.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <llama4/engine.h>

namespace {

// Deterministic pseudo-random weights, N(0, scale^2)-ish, with no dependency.
struct Rng {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return float((s >> 40) & 0xFFFFFF) / float(1 << 24) * 2.0f - 1.0f;
  }
};

llama4::TextConfig tiny_config() {
  llama4::TextConfig c;
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
  c.no_rope_layers = {1, 0};  // layer 0: RoPE + chunked-local; layer 1: NoPE + global
  c.attention_chunk_size = 8;
  c.floor_scale = 4;  // temperature tuning active from position 3 on the NoPE layer
  c.max_position_embeddings = 256;
  return c;
}

}  // namespace

int run_engine_demo() {
  const llama4::TextConfig config = tiny_config();
  // One buffer per weight, sized from the engine's own table of names and shapes.
  std::vector<std::vector<float>> storage;
  llama4::WeightMap weights;
  Rng rng;
  for (const auto& [name, shape] : llama4::expected_text_weights(config)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const bool norm = name.find("norm") != std::string::npos;
    const float scale = norm ? 0.0f : 1.0f / std::sqrt(float(shape.back()));
    storage.emplace_back(size_t(n));
    for (float& v : storage.back()) v = (norm ? 1.0f : 0.0f) + scale * rng.next() * 1.7f;
    weights.emplace(name, llama4::TensorView(storage.back().data(), llama4::DType::F32, shape));
  }
  llama4::EngineOptions options;
  options.page_size = 4;
  options.kv_cache_bytes = 1 << 20;
  options.max_sequences = 2;
  llama4::Engine engine(config, llama4::DType::F32, weights, options);

  const std::vector<int32_t> prompt_a = {1, 17, 42, 99, 5, 250, 7, 8, 9, 10, 11};  // crosses a chunk
  const std::vector<int32_t> prompt_b = {3, 4, 5};
  // Alone: each sequence on its own.
  const int64_t a = engine.add_sequence();
  const llama4::Tensor alone_a = engine.step({{a, prompt_a, llama4::LogitRows::Last}});
  engine.free_sequence(a);
  const int64_t b = engine.add_sequence();
  engine.step({{b, {prompt_b[0], prompt_b[1]}, llama4::LogitRows::Last}});
  const llama4::Tensor alone_b = engine.step({{b, {prompt_b[2]}, llama4::LogitRows::Last}});
  engine.free_sequence(b);
  // Together: a's prefill and b's decode in one step.
  const int64_t a2 = engine.add_sequence(), b2 = engine.add_sequence();
  engine.step({{b2, {prompt_b[0], prompt_b[1]}, llama4::LogitRows::Last}});
  const llama4::Tensor both = engine.step({{a2, prompt_a, llama4::LogitRows::Last}, {b2, {prompt_b[2]}, llama4::LogitRows::Last}});

  int failures = 0;
  const int64_t V = config.vocab_size;
  if (both.size(0) != 2 || both.size(1) != V) ++failures;
  float max_diff = 0.f, max_abs = 0.f;
  int argmax_a = 0;
  for (int64_t v = 0; v < V; ++v) {
    const float la = both.ptr<float>()[v], lb = both.ptr<float>()[V + v];
    if (!std::isfinite(la) || !std::isfinite(lb)) ++failures;
    max_diff = std::max({max_diff, std::fabs(la - alone_a.ptr<float>()[v]), std::fabs(lb - alone_b.ptr<float>()[v])});
    max_abs = std::max(max_abs, std::fabs(la));
    if (la > both.ptr<float>()[argmax_a]) argmax_a = int(v);
  }
  std::printf("engine: 2-layer random model, batched vs alone max |dlogit| = %.2e (logit scale %.2f), "
              "next token of a = %d, KV pages free %lld/%lld (chunked) %lld/%lld (global)\n",
              max_diff, max_abs, argmax_a, (long long)engine.cache().free_pages(0),
              (long long)engine.cache().total_pages(0), (long long)engine.cache().free_pages(1),
              (long long)engine.cache().total_pages(1));
  if (!(max_diff <= 1e-5f * std::max(1.0f, max_abs))) ++failures;
  return failures;
}
