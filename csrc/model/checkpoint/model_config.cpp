// config.json -> ModelConfig: the two architectures' layouts, Llama4Config's top-level defaults and
// aliases, and the public parse/load entries of llama4/model_config.h.
#include "llama4/model_config.h"
#include "model/checkpoint/config_reader.h"
#include "model/checkpoint/config_sections.h"

namespace llama4 {

namespace checkpoint {
namespace {

constexpr const char* kArchConditional = "Llama4ForConditionalGeneration";
constexpr const char* kArchCausal = "Llama4ForCausalLM";

std::string architecture(const json& d, const char* fallback, const std::string& file) {
  const json& a = d.contains("architectures") ? d.at("architectures") : json();
  if (!truthy(a)) return fallback;
  if (a.is_array() && a[0].is_string()) return a[0].get<std::string>();
  throw ConfigError("architectures", "expected a list of class names, got " + py_repr(a), file);
}

std::optional<std::string> checkpoint_dtype(const json& d, const std::string& file) {
  const char* key = d.contains("dtype") ? "dtype" : "torch_dtype";
  if (!d.contains(key) || d.at(key).is_null()) return std::nullopt;
  if (!d.at(key).is_string()) throw ConfigError(key, "expected a string, got " + py_repr(d.at(key)), file);
  return d.at(key).get<std::string>();
}

std::string quantization_config(const json& d) {
  return d.contains("quantization_config") && !d.at("quantization_config").is_null()
             ? d.at("quantization_config").dump()
             : "";
}

// Llama4Config: HF builds class-default sub-configs when text_config / vision_config are null.
ModelConfig conditional(json d, const std::string& file) {
  ModelConfig m;
  static const json kEmpty = json::object();
  const auto section = [&](const char* k) -> const json& {
    return d.contains(k) && truthy(d.at(k)) ? d.at(k) : kEmpty;
  };
  m.text = text_config_from_json(section("text_config"), "text_config", file);
  m.vision = vision_config_from_json(section("vision_config"), "vision_config", file);
  m.vision->text_hidden_size = m.text.hidden_size;
  // Llama4Config.attribute_map aliases, then its class defaults.
  for (const auto& [alias, key] : {std::pair{"image_token_id", "image_token_index"},
                                   {"boi_token_id", "boi_token_index"}, {"eoi_token_id", "eoi_token_index"}}) {
    if (d.contains(alias) && !d.contains(key)) d[key] = d[alias];
  }
  const json defaults = {{"boi_token_index", 200080}, {"eoi_token_index", 200081}, {"image_token_index", 200092},
                         {"bos_token_id", to_json(m.text.bos_token_id)},
                         {"eos_token_id", to_json(m.text.eos_token_id)},
                         {"pad_token_id", to_json(m.text.pad_token_id)}};
  const FieldReader r(d, defaults, "", file);
  m.architecture = architecture(d, kArchConditional, file);
  m.model_type = "llama4";
  m.bos_token_id = r.token_ids("bos_token_id");
  m.eos_token_id = r.token_ids("eos_token_id");
  m.pad_token_id = r.token_ids("pad_token_id");
  m.tie_word_embeddings = m.text.tie_word_embeddings;
  m.image_token_index = r.integer("image_token_index", 0);
  m.boi_token_index = r.integer("boi_token_index", 0);
  m.eoi_token_index = r.integer("eoi_token_index", 0);
  m.dtype = checkpoint_dtype(d, file);
  m.quantization_config = quantization_config(d);
  return m;
}

ModelConfig causal(const json& d, const std::string& file) {
  ModelConfig m;
  m.text = text_config_from_json(d, "", file);
  m.architecture = architecture(d, kArchCausal, file);
  m.model_type = "llama4_text";
  m.bos_token_id = m.text.bos_token_id;
  m.eos_token_id = m.text.eos_token_id;
  m.pad_token_id = m.text.pad_token_id;
  m.tie_word_embeddings = m.text.tie_word_embeddings;
  m.dtype = checkpoint_dtype(d, file);
  m.quantization_config = quantization_config(d);
  return m;
}

json parse_object(const std::string& text, const std::string& file) {
  json d;
  std::string error;
  if (!parse_json(text, d, error)) throw ConfigError("", "invalid JSON (" + error + ")", file);
  return d;
}

ModelConfig model_config_from_json(const json& d, const std::string& file) {
  if (!d.is_object()) throw ConfigError("", "expected a JSON object at top level, got " + type_name(d), file);
  const json& type = d.contains("model_type") ? d.at("model_type") : json();
  if (type == "llama4" || (type.is_null() && d.contains("text_config"))) return conditional(d, file);
  if (type == "llama4_text" || type.is_null()) return causal(d, file);
  throw ConfigError("model_type", "expected 'llama4' or 'llama4_text', got " + py_repr(type), file);
}

}  // namespace

}  // namespace checkpoint

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  return checkpoint::model_config_from_json(checkpoint::parse_object(json_text, source), source);
}

ModelConfig load_model_config(const std::string& path) {
  const std::string file = checkpoint::file_in_folder(path, "config.json");
  std::string text, error;
  if (!checkpoint::read_text_file(file, text, error)) throw ConfigError("", "cannot read (" + error + ")", file);
  return parse_model_config(text, file);
}

TextConfig parse_text_config(const std::string& json_text, const std::string& section, const std::string& source) {
  return checkpoint::text_config_from_json(checkpoint::parse_object(json_text, source), section, source);
}

VisionConfig parse_vision_config(const std::string& json_text, const std::string& section, const std::string& source) {
  return checkpoint::vision_config_from_json(checkpoint::parse_object(json_text, source), section, source);
}

}  // namespace llama4
