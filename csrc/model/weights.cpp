// The engine weight names and shapes a TextConfig needs (the table the loaders fill).
#include <algorithm>

#include "llama4/error.h"
#include "llama4/model.h"

namespace llama4 {

namespace {
bool listed(const std::vector<int>& layers, int i) { return std::find(layers.begin(), layers.end(), i) != layers.end(); }
}  // namespace

std::vector<std::pair<std::string, Shape>> expected_text_weights(const TextConfig& c,
                                                                 const std::vector<int>& fp8_moe_layers,
                                                                 const std::vector<int>& int4_mlp_layers) {
  const int64_t D = c.hidden_size, V = c.vocab_size, d = c.head_dim;
  const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads;
  const int64_t E = c.num_local_experts, I = c.intermediate_size, Im = c.intermediate_size_mlp;
  const int64_t G = c.moe_int4_group_size;
  LLAMA4_CHECK_ARG(int4_mlp_layers.empty() || G > 0, "INT4 shared-expert / MLP layers need the config's "
                   "moe_int4_group_size (the scales' group size), got 0");
  std::vector<std::pair<std::string, Shape>> w = {
      {"embed_tokens", {V, D}}, {"norm", {D}}, {"lm_head", {V, D}}};
  // A SwiGLU MLP of width `inter` (the shared expert, a dense MLP): bf16 gate_up [2 inter, D] and down
  // [D, inter], or INT4 (llama4/moe_int4.h) packed [N, K/2] with bf16 scales [N, K/G] after each.
  const auto mlp = [&](const std::string& prefix, int64_t inter, bool int4) {
    if (!int4) {
      w.push_back({prefix + "gate_up", {2 * inter, D}});
      w.push_back({prefix + "down", {D, inter}});
      return;
    }
    w.push_back({prefix + "gate_up", {2 * inter, D / 2}});
    w.push_back({prefix + "down", {D, inter / 2}});
    w.push_back({prefix + "gate_up_scale", {2 * inter, D / G}});
    w.push_back({prefix + "down_scale", {D, inter / G}});
  };
  for (int i = 0; i < int(c.num_hidden_layers); ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    w.push_back({p + "input_layernorm", {D}});
    w.push_back({p + "post_attention_layernorm", {D}});
    w.push_back({p + "attn.qkv", {(H + 2 * KV) * d, D}});
    w.push_back({p + "attn.o", {D, H * d}});
    if (c.is_moe_layer(i)) {
      w.push_back({p + "moe.router", {E, D}});
      const bool quantized = listed(fp8_moe_layers, i);
      if (quantized && G > 0) {  // INT4 (llama4/moe_int4.h): two int4 per byte, bf16 scales per group
        w.push_back({p + "moe.gate_up", {E, 2 * I, D / 2}});
        w.push_back({p + "moe.down", {E, D, I / 2}});
        w.push_back({p + "moe.gate_up_scale", {E, 2 * I, D / G}});
        w.push_back({p + "moe.down_scale", {E, D, I / G}});
      } else {
        w.push_back({p + "moe.gate_up", {E, 2 * I, D}});
        w.push_back({p + "moe.down", {E, D, I}});
        if (quantized) {
          w.push_back({p + "moe.gate_up_scale", {E, 2 * I}});
          w.push_back({p + "moe.down_scale", {E, D}});
        }
      }
      mlp(p + "moe.shared_", I, listed(int4_mlp_layers, i));
    } else {
      mlp(p + "mlp.", Im, listed(int4_mlp_layers, i));
    }
  }
  return w;
}

}  // namespace llama4
