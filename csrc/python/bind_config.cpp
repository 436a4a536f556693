// Bindings of the config structs (llama4/config.h, vision.h, model_config.h) and their parsers:
//   _C.TextConfig / VisionConfig / ModelConfig / GenerationConfig: read-only attributes with the
//   names config.json uses; lists as tuples; null | int | [int] fields as None / int / list;
//   equality and repr over every attribute (like the frozen dataclasses they replace).
//   _C.load_model_config(path), parse_model_config(text, source), parse_text_config(text, section),
//   parse_vision_config(text, section), load_generation_config(path).
// Also the engine's plain-dict spelling of a TextConfig / VisionConfig (to_engine_dict, and the
// dicts _C.Engine and _C.VisionModel still accept): text_config_from_py / vision_config_from_py.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/error.h"
#include "llama4/generation_defaults.h"
#include "llama4/model_config.h"
#include "python/bindings.h"

namespace llama4::python {

namespace py = pybind11;

py::object int_or_list(const IntOrList& v) {
  if (v.is_list) return py::cast(v.values);
  if (v.values.empty()) return py::none();
  return py::int_(v.values[0]);
}

namespace {

template <typename T>
py::tuple as_tuple(const std::vector<T>& v) {
  py::tuple t(v.size());
  for (size_t i = 0; i < v.size(); ++i) t[i] = py::cast(v[i]);
  return t;
}

py::object json_loads(const std::string& text) {
  if (text.empty()) return py::none();
  return py::module_::import("json").attr("loads")(text);
}

// The names of a bound class's properties (its attributes), in definition order.
py::list property_names(const py::handle& cls) {
  py::list names;
  const py::object property = py::module_::import("builtins").attr("property");
  for (const auto& item : cls.attr("__dict__").attr("items")()) {
    const auto kv = item.cast<py::tuple>();
    if (py::isinstance(kv[1], property)) names.append(kv[0]);
  }
  return names;
}

// __eq__ and __repr__ over every property: one list of fields (the bindings below), not three.
template <typename T>
void value_semantics(py::class_<T>& cls, const char* name) {
  cls.def("__eq__", [](const py::object& a, const py::object& b) -> py::object {
    if (!py::type::of(a).is(py::type::of(b))) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    for (const auto& n : property_names(py::type::of(a)))
      if (!a.attr(n).equal(b.attr(n))) return py::bool_(false);
    return py::bool_(true);
  });
  cls.def("__repr__", [name](const py::object& self) {
    std::string s = std::string(name) + "(";
    bool first = true;
    for (const auto& n : property_names(py::type::of(self))) {
      s += (first ? "" : ", ") + n.cast<std::string>() + "=" + py::repr(self.attr(n)).cast<std::string>();
      first = false;
    }
    return s + ")";
  });
  cls.attr("__hash__") = py::none();
}

std::string dumps(const py::handle& d) { return py::module_::import("json").attr("dumps")(d).cast<std::string>(); }

template <typename T>
T get(const py::dict& d, const char* key, const char* what) {
  LLAMA4_CHECK_ARG(d.contains(key), what, " is missing the field '", key, "'");
  try {
    return d[key].cast<T>();
  } catch (const py::cast_error&) {
    throw TypeError(detail::concat(what, " field '", key, "' has the wrong type"));
  }
}

// The engine dict (legacy plain-data spelling of a TextConfig's engine fields).
py::dict to_engine_dict(const TextConfig& c) {
  py::dict d;
  d["vocab_size"] = c.vocab_size;
  d["hidden_size"] = c.hidden_size;
  d["intermediate_size"] = c.intermediate_size;
  d["intermediate_size_mlp"] = c.intermediate_size_mlp;
  d["num_hidden_layers"] = c.num_hidden_layers;
  d["num_attention_heads"] = c.num_attention_heads;
  d["num_key_value_heads"] = c.num_key_value_heads;
  d["head_dim"] = c.head_dim;
  d["num_local_experts"] = c.num_local_experts;
  d["num_experts_per_tok"] = c.num_experts_per_tok;
  d["moe_layers"] = py::cast(c.moe_layers);
  d["no_rope_layers"] = py::cast(c.no_rope_layers);
  d["attention_chunk_size"] = c.attention_chunk_size;
  d["rope_theta"] = c.rope_theta;
  d["rope_type"] = c.rope_type();
  d["rope_factor"] = double(c.rope_scaling.factor);
  d["rope_low_freq_factor"] = double(c.rope_scaling.low_freq_factor);
  d["rope_high_freq_factor"] = double(c.rope_scaling.high_freq_factor);
  d["rope_original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
  d["use_qk_norm"] = c.use_qk_norm;
  d["attn_temperature_tuning"] = c.attn_temperature_tuning;
  d["floor_scale"] = c.floor_scale;
  d["attn_scale"] = c.attn_scale;
  d["rms_norm_eps"] = c.rms_norm_eps;
  d["max_position_embeddings"] = c.max_position_embeddings;
  return d;
}

TextConfig text_config_from_dict(const py::dict& d) {
  const char* w = "engine config";
  TextConfig c;
  c.vocab_size = get<int64_t>(d, "vocab_size", w);
  c.hidden_size = get<int64_t>(d, "hidden_size", w);
  c.intermediate_size = get<int64_t>(d, "intermediate_size", w);
  c.intermediate_size_mlp = get<int64_t>(d, "intermediate_size_mlp", w);
  c.num_hidden_layers = get<int64_t>(d, "num_hidden_layers", w);
  c.num_attention_heads = get<int64_t>(d, "num_attention_heads", w);
  c.num_key_value_heads = get<int64_t>(d, "num_key_value_heads", w);
  c.head_dim = get<int64_t>(d, "head_dim", w);
  c.num_local_experts = get<int64_t>(d, "num_local_experts", w);
  c.num_experts_per_tok = get<int64_t>(d, "num_experts_per_tok", w);
  c.moe_layers = get<std::vector<int>>(d, "moe_layers", w);
  c.no_rope_layers = get<std::vector<int>>(d, "no_rope_layers", w);
  c.attention_chunk_size = get<int64_t>(d, "attention_chunk_size", w);
  c.rope_theta = get<double>(d, "rope_theta", w);
  const auto rope_type = get<std::string>(d, "rope_type", w);
  if (rope_type == "llama3") {
    c.rope_scaling.type = RopeScaling::Type::Llama3;
    c.rope_scaling.factor = get<float>(d, "rope_factor", w);
    c.rope_scaling.low_freq_factor = get<float>(d, "rope_low_freq_factor", w);
    c.rope_scaling.high_freq_factor = get<float>(d, "rope_high_freq_factor", w);
    c.rope_scaling.original_max_position_embeddings = get<int64_t>(d, "rope_original_max_position_embeddings", w);
  } else {
    LLAMA4_CHECK_ARG(rope_type == "default", "engine config field 'rope_type' must be 'default' or 'llama3', got '",
                     rope_type, "'");
  }
  c.use_qk_norm = get<bool>(d, "use_qk_norm", w);
  c.attn_temperature_tuning = get<bool>(d, "attn_temperature_tuning", w);
  c.floor_scale = int64_t(get<double>(d, "floor_scale", w));
  c.attn_scale = get<double>(d, "attn_scale", w);
  c.rms_norm_eps = get<double>(d, "rms_norm_eps", w);
  c.max_position_embeddings = get<int64_t>(d, "max_position_embeddings", w);
  if (d.contains("moe_fp8_activation_scale_ub"))  // optional: only FP8 models set it
    c.moe_fp8_activation_scale_ub = get<float>(d, "moe_fp8_activation_scale_ub", w);
  if (d.contains("moe_int4_group_size"))  // optional: only INT4 models set it
    c.moe_int4_group_size = get<int64_t>(d, "moe_int4_group_size", w);
  return c;
}

VisionConfig vision_config_from_dict(const py::dict& d) {
  const char* w = "vision config";
  VisionConfig c;
  c.hidden_size = get<int64_t>(d, "hidden_size", w);
  c.num_hidden_layers = get<int64_t>(d, "num_hidden_layers", w);
  c.num_attention_heads = get<int64_t>(d, "num_attention_heads", w);
  c.intermediate_size = get<int64_t>(d, "intermediate_size", w);
  c.image_size = get<int64_t>(d, "image_size", w);
  c.patch_size = get<int64_t>(d, "patch_size", w);
  c.num_channels = get<int64_t>(d, "num_channels", w);
  c.pixel_shuffle_ratio = get<double>(d, "pixel_shuffle_ratio", w);
  c.projector_input_dim = get<int64_t>(d, "projector_input_dim", w);
  c.projector_output_dim = get<int64_t>(d, "projector_output_dim", w);
  c.rope_theta = get<double>(d, "rope_theta", w);
  c.text_hidden_size = get<int64_t>(d, "text_hidden_size", w);
  c.vision_output_dim = c.projector_output_dim;
  return c;
}

void bind_text_config(py::module_& m) {
  py::class_<TextConfig> c(m, "TextConfig", "The text decoder's config (Llama4TextConfig after HF's derivations)");
  c.def_readonly("vocab_size", &TextConfig::vocab_size)
      .def_readonly("hidden_size", &TextConfig::hidden_size)
      .def_readonly("intermediate_size", &TextConfig::intermediate_size)
      .def_readonly("intermediate_size_mlp", &TextConfig::intermediate_size_mlp)
      .def_readonly("num_hidden_layers", &TextConfig::num_hidden_layers)
      .def_readonly("num_attention_heads", &TextConfig::num_attention_heads)
      .def_readonly("num_key_value_heads", &TextConfig::num_key_value_heads)
      .def_readonly("head_dim", &TextConfig::head_dim)
      .def_readonly("hidden_act", &TextConfig::hidden_act)
      .def_readonly("max_position_embeddings", &TextConfig::max_position_embeddings)
      .def_readonly("rms_norm_eps", &TextConfig::rms_norm_eps)
      .def_readonly("num_local_experts", &TextConfig::num_local_experts)
      .def_readonly("num_experts_per_tok", &TextConfig::num_experts_per_tok)
      .def_readonly("interleave_moe_layer_step", &TextConfig::interleave_moe_layer_step)
      .def_property_readonly("moe_layers", [](const TextConfig& t) { return as_tuple(t.moe_layers); })
      .def_readonly("no_rope_layer_interval", &TextConfig::no_rope_layer_interval)
      .def_property_readonly("no_rope_layers", [](const TextConfig& t) { return as_tuple(t.no_rope_layers); })
      .def_property_readonly("layer_types", [](const TextConfig& t) { return as_tuple(t.layer_types()); })
      .def_readonly("attention_chunk_size", &TextConfig::attention_chunk_size)
      .def_readonly("use_qk_norm", &TextConfig::use_qk_norm)
      .def_readonly("attn_temperature_tuning", &TextConfig::attn_temperature_tuning)
      .def_readonly("floor_scale", &TextConfig::floor_scale)
      .def_readonly("attn_scale", &TextConfig::attn_scale)
      .def_readonly("attention_bias", &TextConfig::attention_bias)
      .def_readonly("rope_theta", &TextConfig::rope_theta)
      .def_property_readonly("rope_type", &TextConfig::rope_type)
      .def_property_readonly("rope_factor", [](const TextConfig& t) { return double(t.rope_scaling.factor); })
      .def_property_readonly("rope_low_freq_factor",
                             [](const TextConfig& t) { return double(t.rope_scaling.low_freq_factor); })
      .def_property_readonly("rope_high_freq_factor",
                             [](const TextConfig& t) { return double(t.rope_scaling.high_freq_factor); })
      .def_property_readonly("rope_original_max_position_embeddings",
                             [](const TextConfig& t) { return t.rope_scaling.original_max_position_embeddings; })
      .def_property_readonly("rope_parameters", [](const TextConfig& t) { return json_loads(t.rope_parameters); })
      .def_readonly("tie_word_embeddings", &TextConfig::tie_word_embeddings)
      .def_property_readonly("bos_token_id", [](const TextConfig& t) { return int_or_list(t.bos_token_id); })
      .def_property_readonly("eos_token_id", [](const TextConfig& t) { return int_or_list(t.eos_token_id); })
      .def_property_readonly("pad_token_id", [](const TextConfig& t) { return int_or_list(t.pad_token_id); })
      .def_readonly("moe_fp8_activation_scale_ub", &TextConfig::moe_fp8_activation_scale_ub)
      .def_readonly("moe_int4_group_size", &TextConfig::moe_int4_group_size)
      .def("is_moe_layer", &TextConfig::is_moe_layer, py::arg("layer"))
      .def("uses_rope", &TextConfig::uses_rope, py::arg("layer"))
      .def("to_engine_dict", &to_engine_dict, "The engine's plain-dict spelling (ints, floats, bools, lists)")
      .def_static(
          "from_dict",
          [](const py::object& d, const std::string& section) { return parse_text_config(dumps(d), section); },
          py::arg("d"), py::arg("section") = "", "Parse a llama4_text config dict (ConfigError naming the field)");
  value_semantics(c, "TextConfig");
}

void bind_vision_config(py::module_& m) {
  py::class_<VisionConfig> c(m, "VisionConfig", "The vision encoder + pixel-shuffle adapter (Llama4VisionConfig)");
  c.def_readonly("hidden_size", &VisionConfig::hidden_size)
      .def_readonly("num_hidden_layers", &VisionConfig::num_hidden_layers)
      .def_readonly("num_attention_heads", &VisionConfig::num_attention_heads)
      .def_readonly("intermediate_size", &VisionConfig::intermediate_size)
      .def_readonly("image_size", &VisionConfig::image_size)
      .def_readonly("patch_size", &VisionConfig::patch_size)
      .def_readonly("num_channels", &VisionConfig::num_channels)
      .def_readonly("pixel_shuffle_ratio", &VisionConfig::pixel_shuffle_ratio)
      .def_readonly("projector_input_dim", &VisionConfig::projector_input_dim)
      .def_readonly("projector_output_dim", &VisionConfig::projector_output_dim)
      .def_readonly("vision_output_dim", &VisionConfig::vision_output_dim)
      .def_readonly("multi_modal_projector_bias", &VisionConfig::multi_modal_projector_bias)
      .def_readonly("rope_theta", &VisionConfig::rope_theta)
      .def_readonly("norm_eps", &VisionConfig::norm_eps)
      .def_readonly("hidden_act", &VisionConfig::hidden_act)
      .def_property_readonly("vision_feature_layer", [](const VisionConfig& v) { return int_or_list(v.vision_feature_layer); })
      .def_readonly("vision_feature_select_strategy", &VisionConfig::vision_feature_select_strategy)
      .def_readonly("text_hidden_size", &VisionConfig::text_hidden_size)
      .def_property_readonly("head_dim", &VisionConfig::head_dim)
      .def_property_readonly("patches_per_side", &VisionConfig::patches_per_side)
      .def_property_readonly("num_patches", &VisionConfig::num_patches, "Patches per tile, without the CLS token")
      .def_property_readonly("tokens_per_tile", &VisionConfig::tokens_per_tile,
                             "<|patch|> tokens per tile after pixel shuffle (144 for the published models)")
      .def_static(
          "from_dict",
          [](const py::object& d, const std::string& section) { return parse_vision_config(dumps(d), section); },
          py::arg("d"), py::arg("section") = "vision_config");
  value_semantics(c, "VisionConfig");
}

void bind_model_config(py::module_& m) {
  py::class_<ModelConfig> c(m, "ModelConfig", "A Llama 4 checkpoint's config: text decoder, optional vision tower, ids");
  c.def_readonly("text", &ModelConfig::text)
      .def_property_readonly("vision", [](const ModelConfig& mc) -> py::object {
        return mc.vision ? py::cast(*mc.vision) : py::none();
      })
      .def_readonly("architecture", &ModelConfig::architecture)
      .def_readonly("model_type", &ModelConfig::model_type)
      .def_property_readonly("bos_token_id", [](const ModelConfig& mc) { return int_or_list(mc.bos_token_id); })
      .def_property_readonly("eos_token_id", [](const ModelConfig& mc) { return int_or_list(mc.eos_token_id); })
      .def_property_readonly("pad_token_id", [](const ModelConfig& mc) { return int_or_list(mc.pad_token_id); })
      .def_readonly("tie_word_embeddings", &ModelConfig::tie_word_embeddings)
      .def_readonly("image_token_index", &ModelConfig::image_token_index)
      .def_readonly("boi_token_index", &ModelConfig::boi_token_index)
      .def_readonly("eoi_token_index", &ModelConfig::eoi_token_index)
      .def_readonly("dtype", &ModelConfig::dtype)
      .def_property_readonly("quantization_config",
                             [](const ModelConfig& mc) { return json_loads(mc.quantization_config); })
      .def_property_readonly("eos_token_ids", [](const ModelConfig& mc) { return as_tuple(mc.eos_token_id.values); });
  value_semantics(c, "ModelConfig");
}

void bind_generation_config(py::module_& m) {
  py::class_<GenerationConfig> c(m, "GenerationConfig", "generation_config.json: stop ids and sampling defaults");
  c.def_property_readonly("bos_token_id", [](const GenerationConfig& g) { return int_or_list(g.bos_token_id); })
      .def_property_readonly("eos_token_id", [](const GenerationConfig& g) { return int_or_list(g.eos_token_id); })
      .def_property_readonly("pad_token_id", [](const GenerationConfig& g) { return int_or_list(g.pad_token_id); })
      .def_readonly("do_sample", &GenerationConfig::do_sample)
      .def_readonly("temperature", &GenerationConfig::temperature)
      .def_readonly("top_p", &GenerationConfig::top_p)
      .def_readonly("min_p", &GenerationConfig::min_p)
      .def_readonly("repetition_penalty", &GenerationConfig::repetition_penalty)
      .def_readonly("top_k", &GenerationConfig::top_k)
      .def_readonly("max_new_tokens", &GenerationConfig::max_new_tokens)
      .def_readonly("max_length", &GenerationConfig::max_length);
  value_semantics(c, "GenerationConfig");
  c.def("to_dict", [](const py::object& self) {
    py::dict d;  // the fields the file sets
    for (const auto& n : property_names(py::type::of(self)))
      if (!self.attr(n).is_none()) d[n] = self.attr(n);
    return d;
  });
}

}  // namespace

TextConfig text_config_from_py(const py::handle& config) {
  if (py::isinstance<TextConfig>(config)) return config.cast<TextConfig>();
  LLAMA4_CHECK_TYPE(py::isinstance<py::dict>(config), "config must be a TextConfig or a dict, got ",
                    py::str(py::type::of(config).attr("__name__")).cast<std::string>());
  return text_config_from_dict(config.cast<py::dict>());
}

VisionConfig vision_config_from_py(const py::handle& config) {
  if (py::isinstance<VisionConfig>(config)) return config.cast<VisionConfig>();
  LLAMA4_CHECK_TYPE(py::isinstance<py::dict>(config), "config must be a VisionConfig or a dict, got ",
                    py::str(py::type::of(config).attr("__name__")).cast<std::string>());
  return vision_config_from_dict(config.cast<py::dict>());
}

void register_config(py::module_& m) {
  bind_text_config(m);
  bind_vision_config(m);
  bind_model_config(m);
  bind_generation_config(m);
  m.def("load_model_config", &load_model_config, py::arg("path"), "config.json of a folder, or the file");
  m.def("parse_model_config", &parse_model_config, py::arg("text"), py::arg("source") = "");
  m.def("load_generation_config", &load_generation_config, py::arg("path"));
  m.def("parse_generation_config", &parse_generation_config, py::arg("text"), py::arg("source") = "");
  // llama4/generation_defaults.h: the defaults generate(), the server and the C++ example share.
  m.def("default_sampling", [](const GenerationConfig& g) {
    const SamplingParams p = default_sampling(g);
    py::dict d;
    d["temperature"] = p.temperature;
    d["top_k"] = p.top_k;
    d["top_p"] = p.top_p;
    return d;
  }, py::arg("generation_config"));
  m.def("default_stop_ids", &default_stop_ids, py::arg("generation_config"), py::arg("config"));
}

}  // namespace llama4::python
