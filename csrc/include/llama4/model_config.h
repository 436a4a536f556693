// A Llama 4 checkpoint's config.json -> ModelConfig, and generation_config.json -> GenerationConfig.
//
// Reproduces transformers 5.23's Llama4Config / Llama4TextConfig / Llama4VisionConfig parsing: class
// defaults for missing fields, the __post_init__ derivations (head_dim, num_key_value_heads,
// no_rope_layers, moe_layers), both RoPE spellings (legacy `rope_scaling` + `rope_theta`, 5.23
// `rope_parameters`), `dtype` / `torch_dtype`, integral floats such as `hidden_size: 128.0`.
// Two layouts (LLAMA4.md §1, §9):
//   * Llama4ForConditionalGeneration: model_type "llama4", `text_config` and `vision_config`;
//   * Llama4ForCausalLM: model_type "llama4_text", the text fields at top level, no vision.
// A config the engine cannot run throws ConfigError naming the (qualified) field and the file.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llama4/config.h"
#include "llama4/vision.h"

namespace llama4 {

struct ModelConfig {
  TextConfig text;
  std::optional<VisionConfig> vision;  // absent for Llama4ForCausalLM; text_hidden_size = text's
  std::string architecture;            // "Llama4ForConditionalGeneration" | "Llama4ForCausalLM"
  std::string model_type;              // "llama4" | "llama4_text"
  IntOrList bos_token_id, eos_token_id, pad_token_id;  // top level, else the text config's
  bool tie_word_embeddings = false;    // the text config's flag (the one HF ties lm_head by)
  std::optional<int64_t> image_token_index, boi_token_index, eoi_token_index;  // vision only
  std::optional<std::string> dtype;    // "dtype" (5.23) or "torch_dtype" (4.x), as written
  // config.json's quantization_config as JSON text ("" when absent): FP8 checkpoints
  // (llama4/checkpoint.h make_fp8_plan reads and checks it).
  std::string quantization_config;
};

// `path`: a checkpoint folder (its config.json) or a config.json file.
ModelConfig load_model_config(const std::string& path);
// The same from JSON text; `source` names it in errors ("" for none).
ModelConfig parse_model_config(const std::string& json_text, const std::string& source = "");
// One section on its own (a `llama4_text` config / a vision_config); `section` qualifies the
// field names in errors ("text_config" -> "text_config.head_dim").
TextConfig parse_text_config(const std::string& json_text, const std::string& section = "",
                             const std::string& source = "");
VisionConfig parse_vision_config(const std::string& json_text, const std::string& section = "vision_config",
                                 const std::string& source = "");

// generation_config.json: the stop ids and sampling defaults a checkpoint ships. Unset (missing or
// null) fields stay empty; unknown fields are ignored; a field of the wrong type throws ConfigError
// naming it (e.g. `eos_token_id: "abc"`).
struct GenerationConfig {
  IntOrList bos_token_id, eos_token_id, pad_token_id;
  std::optional<bool> do_sample;
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<int64_t> top_k, max_new_tokens, max_length;
};
// `path`: a checkpoint folder or a generation_config.json; a folder without one gives {}.
GenerationConfig load_generation_config(const std::string& path);
GenerationConfig parse_generation_config(const std::string& json_text, const std::string& source = "");

}  // namespace llama4
