// config.json vision_config -> VisionConfig, as transformers 5.23's Llama4VisionConfig (whose class
// defaults do NOT match the published models, LLAMA4.md §9 item 13), plus the shape constraints
// HF leaves implicit (a config that breaks them only fails in forward there).
#include <cmath>

#include "model/checkpoint/config_reader.h"
#include "model/checkpoint/config_sections.h"

namespace llama4::checkpoint {

namespace {

const json& vision_defaults() {
  static const json d = {
      {"hidden_size", 768}, {"hidden_act", "gelu"}, {"num_hidden_layers", 34}, {"num_attention_heads", 16},
      {"num_channels", 3}, {"intermediate_size", 5632}, {"vision_output_dim", 7680}, {"image_size", 448},
      {"patch_size", 14}, {"norm_eps", 1e-5}, {"vision_feature_select_strategy", "default"},
      {"vision_feature_layer", -1}, {"pixel_shuffle_ratio", 0.5}, {"projector_input_dim", 4096},
      {"projector_output_dim", 4096}, {"multi_modal_projector_bias", false}, {"projector_dropout", 0.0},
      {"attention_dropout", 0.0}};
  return d;
}
constexpr double kDefaultRopeTheta = 10000.0;  // RotaryEmbeddingConfigMixin.default_theta

// image_size / patch_size may be [n, n] in HF; the model code only handles squares.
int64_t square(const FieldReader& r, const std::string& key) {
  const json& v = r.raw(key);
  if (v.is_array()) {
    if (v.size() != 2 || v[0] != v[1]) throw r.fail(key, "only square sizes are supported, got " + py_repr(v));
    return r.size(key, kMaxConfigDim, &v[0]);
  }
  return r.size(key, kMaxConfigDim);
}

std::string string_field(const FieldReader& r, const std::string& key) {
  const json& v = r.raw(key);
  if (!v.is_string()) throw r.fail(key, "expected a string, got " + py_repr(v));
  return v.get<std::string>();
}

void check_vision(const FieldReader& r, const VisionConfig& c) {
  const auto s = [](auto v) { return std::to_string(v); };
  if (c.hidden_size % c.num_attention_heads || c.head_dim() % 4)
    throw r.fail("num_attention_heads", "hidden_size (" + s(c.hidden_size) + ") / num_attention_heads (" +
                                            s(c.num_attention_heads) +
                                            ") must be a multiple of 4 (2D RoPE splits each head into x and y pairs)");
  if (c.image_size % c.patch_size)
    throw r.fail("patch_size", "image_size (" + s(c.image_size) + ") must be a multiple of patch_size (" +
                                   s(c.patch_size) + ")");
  const double side = double(c.patches_per_side()) * c.pixel_shuffle_ratio;
  const double inner = double(c.hidden_size) / (c.pixel_shuffle_ratio * c.pixel_shuffle_ratio);
  if (std::trunc(side) != side || std::trunc(inner) != inner)
    throw r.fail("pixel_shuffle_ratio", py_repr(json(c.pixel_shuffle_ratio)) + " does not divide the " +
                                            s(c.patches_per_side()) + "x" + s(c.patches_per_side()) +
                                            " patch grid and hidden_size " + s(c.hidden_size) + " evenly");
  if (c.intermediate_size != int64_t(inner))
    throw r.fail("intermediate_size", "must equal hidden_size / pixel_shuffle_ratio^2 = " + s(int64_t(inner)) +
                                          " (the adapter fc1 input), got " + s(c.intermediate_size));
  if (c.projector_input_dim != c.projector_output_dim)
    throw r.fail("projector_input_dim", "must equal projector_output_dim (" + s(c.projector_output_dim) +
                                            "), got " + s(c.projector_input_dim));
  if (c.vision_output_dim != c.projector_output_dim)
    throw r.fail("vision_output_dim", "must equal projector_output_dim (" + s(c.projector_output_dim) + "), got " +
                                          s(c.vision_output_dim));
}

}  // namespace

VisionConfig vision_config_from_json(const json& d, const std::string& section, const std::string& file) {
  if (!d.is_object()) throw ConfigError(section, "expected a JSON object, got " + type_name(d), file);
  const FieldReader r(d, vision_defaults(), section, file);
  static const json kEmpty = json::object();
  const json& params = d.contains("rope_parameters") && truthy(d.at("rope_parameters")) ? d.at("rope_parameters") : kEmpty;
  if (!params.is_object()) throw r.fail("rope_parameters", "expected a JSON object, got " + py_repr(params));
  const json theta = params.contains("rope_theta") ? params.at("rope_theta")
                     : d.contains("rope_theta")    ? d.at("rope_theta")
                                                   : json(kDefaultRopeTheta);
  VisionConfig c;
  c.hidden_size = r.size("hidden_size", kMaxConfigDim);
  c.num_hidden_layers = r.size("num_hidden_layers", kMaxConfigCount);
  c.num_attention_heads = r.size("num_attention_heads", kMaxConfigCount);
  c.intermediate_size = r.size("intermediate_size", kMaxConfigDim);
  c.image_size = square(r, "image_size");
  c.patch_size = square(r, "patch_size");
  c.num_channels = r.size("num_channels", kMaxConfigCount);
  c.projector_input_dim = r.size("projector_input_dim", kMaxConfigDim);
  c.projector_output_dim = r.size("projector_output_dim", kMaxConfigDim);
  c.vision_output_dim = r.size("vision_output_dim", kMaxConfigDim);
  c.pixel_shuffle_ratio = r.number("pixel_shuffle_ratio");
  c.multi_modal_projector_bias = r.boolean("multi_modal_projector_bias");
  c.rope_theta = r.number("rope_parameters.rope_theta", true, &theta);
  c.norm_eps = r.number("norm_eps", false);
  c.hidden_act = string_field(r, "hidden_act");
  c.vision_feature_layer = r.token_ids("vision_feature_layer");
  c.vision_feature_select_strategy = string_field(r, "vision_feature_select_strategy");
  check_vision(r, c);
  return c;
}

}  // namespace llama4::checkpoint
