// The text decoder's configuration: the fields of Hugging Face's Llama4TextConfig after its
// derivations (no_rope_layers, moe_layers, head_dim), as the engine needs them.
#pragma once
#include <cstdint>
#include <vector>

#include "llama4/ops.h"

namespace llama4 {

struct TextConfig {
  int64_t vocab_size = 202048;
  int64_t hidden_size = 5120;
  int64_t intermediate_size = 8192;      // routed and shared experts
  int64_t intermediate_size_mlp = 16384;  // dense FFN layers
  int64_t num_hidden_layers = 48;
  int64_t num_attention_heads = 40;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 128;
  int64_t num_local_experts = 16;
  int64_t num_experts_per_tok = 1;
  std::vector<int> moe_layers;      // layer indices with a MoE feed-forward
  std::vector<int> no_rope_layers;  // per layer: 1 = RoPE + chunked-local attention, 0 = NoPE + global
  int64_t attention_chunk_size = 8192;
  double rope_theta = 500000.0;
  RopeScaling rope_scaling;
  bool use_qk_norm = true;
  bool attn_temperature_tuning = true;
  float floor_scale = 8192.f;
  float attn_scale = 0.1f;
  float rms_norm_eps = 1e-5f;
  int64_t max_position_embeddings = 131072;
  // FP8 experts (layers whose moe.gate_up is e4m3): the per-row amax bound of the activation
  // quantization (quantization_config's activation_scale_ub; Meta's recipe: 1200). 0: none.
  float moe_fp8_activation_scale_ub = 0.f;

  // Throws ValueError naming the first inconsistent field.
  void validate() const;
  bool is_moe_layer(int layer) const;
  bool uses_rope(int layer) const { return no_rope_layers[size_t(layer)] != 0; }
};

}  // namespace llama4
