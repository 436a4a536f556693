// generation_config.json -> GenerationConfig: stop ids and sampling defaults; null and unknown
// fields are ignored, a field of the wrong type is a ConfigError naming it.
#include "llama4/model_config.h"
#include "model/checkpoint/config_reader.h"

namespace llama4 {

GenerationConfig parse_generation_config(const std::string& json_text, const std::string& source) {
  using namespace checkpoint;
  json d;
  std::string error;
  if (!parse_json(json_text, d, error)) throw ConfigError("", "invalid JSON (" + error + ")", source);
  if (!d.is_object()) throw ConfigError("", "expected a JSON object at top level, got " + type_name(d), source);
  static const json kNone = json::object();
  const FieldReader r(d, kNone, "", source);
  const auto set = [&](const char* key) { return d.contains(key) && !d.at(key).is_null(); };
  GenerationConfig g;
  g.bos_token_id = r.token_ids("bos_token_id");
  g.eos_token_id = r.token_ids("eos_token_id");
  g.pad_token_id = r.token_ids("pad_token_id");
  if (set("do_sample")) g.do_sample = r.boolean("do_sample");
  if (set("temperature")) g.temperature = r.number("temperature", false);
  if (set("top_p")) g.top_p = r.number("top_p", false);
  if (set("min_p")) g.min_p = r.number("min_p", false);
  if (set("repetition_penalty")) g.repetition_penalty = r.number("repetition_penalty", true);
  if (set("top_k")) g.top_k = r.integer("top_k", 0);
  if (set("max_new_tokens")) g.max_new_tokens = r.integer("max_new_tokens", 0);
  if (set("max_length")) g.max_length = r.integer("max_length", 0);
  return g;
}

GenerationConfig load_generation_config(const std::string& path) {
  const std::string file = checkpoint::file_in_folder(path, "generation_config.json");
  if (file != path && !checkpoint::path_exists(file)) return {};  // a folder without one
  std::string text, error;
  if (!checkpoint::read_text_file(file, text, error)) throw ConfigError("", "cannot read (" + error + ")", file);
  return parse_generation_config(text, file);
}

}  // namespace llama4
