// The text decoder's configuration: the fields of Hugging Face's Llama4TextConfig after its
// derivations (no_rope_layers, moe_layers, head_dim). parse_text_config / load_model_config
// (llama4/model_config.h) fill it from config.json; C++ applications may also fill it directly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llama4/ops.h"

namespace llama4 {

// A config field that JSON may hold as null, one integer or a list of integers (eos_token_id,
// vision_feature_layer): the values, and whether they were written as a list.
struct IntOrList {
  std::vector<int64_t> values;
  bool is_list = false;
  bool is_null() const { return values.empty() && !is_list; }
  bool operator==(const IntOrList& o) const { return values == o.values && is_list == o.is_list; }
};

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
  int64_t floor_scale = 8192;
  double attn_scale = 0.1;
  double rms_norm_eps = 1e-5;
  int64_t max_position_embeddings = 131072;
  // Fields the engine does not read, kept as config.json says (after HF's derivations).
  std::string hidden_act = "silu";  // only "silu" is accepted
  int64_t interleave_moe_layer_step = 1;  // moe_layers was derived from it unless given
  int64_t no_rope_layer_interval = 4;     // no_rope_layers was derived from it unless given
  bool attention_bias = false;            // only false is accepted
  bool tie_word_embeddings = false;       // lm_head is the embedding (no lm_head.weight tensor)
  IntOrList bos_token_id, eos_token_id, pad_token_id;
  std::string rope_parameters = "{}";  // the RoPE dict as transformers standardizes it, JSON text
  // FP8 experts (layers whose moe.gate_up is e4m3): the per-row amax bound of the activation
  // quantization (quantization_config's activation_scale_ub; Meta's recipe: 1200). 0: none.
  float moe_fp8_activation_scale_ub = 0.f;
  // INT4 weights (routed experts whose moe.gate_up is uint8, shared experts and dense MLPs whose
  // moe.shared_gate_up / mlp.gate_up is uint8; llama4/moe_int4.h): the group size along K of their
  // bf16 scales (quantization_config's group_size, or the one used at load). 0: none.
  int64_t moe_int4_group_size = 0;

  // Throws ValueError naming the first inconsistent field.
  void validate() const;
  bool is_moe_layer(int layer) const;
  bool uses_rope(int layer) const { return no_rope_layers[size_t(layer)] != 0; }
  // Per layer: "chunked_attention" (RoPE layers) or "full_attention" (NoPE), as HF's layer_types.
  std::vector<std::string> layer_types() const;
  const char* rope_type() const { return rope_scaling.type == RopeScaling::Type::Llama3 ? "llama3" : "default"; }
};

}  // namespace llama4
