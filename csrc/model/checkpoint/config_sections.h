// The config.json section parsers (text decoder, vision tower) shared by model_config.cpp and the
// public parse_*_config entries. `file` names the source in errors.
#pragma once
#include <string>

#include "llama4/config.h"
#include "llama4/vision.h"
#include "model/checkpoint/json_util.h"

namespace llama4::checkpoint {

// A `llama4_text` config object (the text_config of a ConditionalGeneration config, or a whole
// CausalLM config). `section`: "text_config" or "" (top level).
TextConfig text_config_from_json(const json& d, const std::string& section, const std::string& file);
// A vision_config object; text_hidden_size is left to the caller.
VisionConfig vision_config_from_json(const json& d, const std::string& section, const std::string& file);

}  // namespace llama4::checkpoint
