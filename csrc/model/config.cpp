// TextConfig validation: every message names the field and its value.
#include <algorithm>

#include "llama4/config.h"
#include "llama4/error.h"

namespace llama4 {

void TextConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    LLAMA4_CHECK_ARG(v > 0, "config field '", name, "' must be positive, got ", v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("intermediate_size_mlp", intermediate_size_mlp);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("num_local_experts", num_local_experts);
  positive("num_experts_per_tok", num_experts_per_tok);
  positive("attention_chunk_size", attention_chunk_size);
  positive("max_position_embeddings", max_position_embeddings);
  LLAMA4_CHECK_ARG(head_dim % 2 == 0, "config field 'head_dim' must be even for RoPE, got ", head_dim);
  LLAMA4_CHECK_ARG(num_attention_heads % num_key_value_heads == 0,
                   "config field 'num_key_value_heads' (", num_key_value_heads,
                   ") must divide num_attention_heads (", num_attention_heads, ")");
  LLAMA4_CHECK_ARG(num_experts_per_tok <= num_local_experts, "config field 'num_experts_per_tok' (",
                   num_experts_per_tok, ") exceeds num_local_experts (", num_local_experts, ")");
  LLAMA4_CHECK_ARG(int64_t(no_rope_layers.size()) == num_hidden_layers,
                   "config field 'no_rope_layers' must have num_hidden_layers (", num_hidden_layers,
                   ") entries, got ", no_rope_layers.size());
  for (int v : no_rope_layers)
    LLAMA4_CHECK_ARG(v == 0 || v == 1, "config field 'no_rope_layers' entries must be 0 or 1, got ", v);
  for (int l : moe_layers)
    LLAMA4_CHECK_ARG(0 <= l && l < num_hidden_layers, "config field 'moe_layers' entry ", l,
                     " is outside [0, ", num_hidden_layers, ")");
  LLAMA4_CHECK_ARG(rope_theta > 0, "config field 'rope_theta' must be positive, got ", rope_theta);
  LLAMA4_CHECK_ARG(rms_norm_eps >= 0, "config field 'rms_norm_eps' must be >= 0, got ", rms_norm_eps);
  LLAMA4_CHECK_ARG(!attn_temperature_tuning || floor_scale > 0,
                   "config field 'floor_scale' must be positive, got ", floor_scale);
}

std::vector<std::string> TextConfig::layer_types() const {
  std::vector<std::string> out;
  for (int v : no_rope_layers) out.push_back(v ? "chunked_attention" : "full_attention");
  return out;
}

bool TextConfig::is_moe_layer(int layer) const {
  return std::find(moe_layers.begin(), moe_layers.end(), layer) != moe_layers.end();
}

}  // namespace llama4
