// The engine weight names and shapes a TextConfig needs (the table the loaders fill).
#include <algorithm>

#include "llama4/model.h"

namespace llama4 {

std::vector<std::pair<std::string, Shape>> expected_text_weights(const TextConfig& c,
                                                                 const std::vector<int>& fp8_moe_layers) {
  const int64_t D = c.hidden_size, V = c.vocab_size, d = c.head_dim;
  const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads;
  const int64_t E = c.num_local_experts, I = c.intermediate_size, Im = c.intermediate_size_mlp;
  std::vector<std::pair<std::string, Shape>> w = {
      {"embed_tokens", {V, D}}, {"norm", {D}}, {"lm_head", {V, D}}};
  for (int i = 0; i < int(c.num_hidden_layers); ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    w.push_back({p + "input_layernorm", {D}});
    w.push_back({p + "post_attention_layernorm", {D}});
    w.push_back({p + "attn.qkv", {(H + 2 * KV) * d, D}});
    w.push_back({p + "attn.o", {D, H * d}});
    if (c.is_moe_layer(i)) {
      w.push_back({p + "moe.router", {E, D}});
      const bool quantized = std::find(fp8_moe_layers.begin(), fp8_moe_layers.end(), i) != fp8_moe_layers.end();
      const int64_t G = c.moe_int4_group_size;
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
      w.push_back({p + "moe.shared_gate_up", {2 * I, D}});
      w.push_back({p + "moe.shared_down", {D, I}});
    } else {
      w.push_back({p + "mlp.gate_up", {2 * Im, D}});
      w.push_back({p + "mlp.down", {D, Im}});
    }
  }
  return w;
}

}  // namespace llama4
