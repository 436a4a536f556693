// config.json text section -> TextConfig, exactly as transformers 5.23's Llama4TextConfig: class
// defaults for missing keys (a MISSING head_dim is 128 and a missing num_key_value_heads 8; only an
// explicit null derives them), __post_init__'s no_rope_layers / moe_layers / layer_types, and the
// RoPE precedence of RotaryEmbeddingConfigMixin. Then the checks for configs the engine cannot run.
#include <algorithm>
#include <set>

#include "model/checkpoint/config_reader.h"
#include "model/checkpoint/config_sections.h"

namespace llama4::checkpoint {

namespace {

const json& text_defaults() {
  static const json d = {
      {"vocab_size", 202048}, {"hidden_size", 5120}, {"intermediate_size", 8192},
      {"intermediate_size_mlp", 16384}, {"num_hidden_layers", 48}, {"num_attention_heads", 40},
      {"num_key_value_heads", 8}, {"head_dim", 128}, {"hidden_act", "silu"},
      {"max_position_embeddings", 4096 * 32}, {"rms_norm_eps", 1e-5}, {"pad_token_id", nullptr},
      {"bos_token_id", 1}, {"eos_token_id", 2}, {"tie_word_embeddings", false},
      {"num_experts_per_tok", 1}, {"num_local_experts", 16}, {"moe_layers", nullptr},
      {"interleave_moe_layer_step", 1}, {"use_qk_norm", true}, {"no_rope_layers", nullptr},
      {"no_rope_layer_interval", 4}, {"attention_chunk_size", 8192}, {"layer_types", nullptr},
      {"attn_temperature_tuning", true}, {"floor_scale", 8192}, {"attn_scale", 0.1},
      {"attention_bias", false}};
  return d;
}
constexpr double kDefaultRopeTheta = 500000.0;  // Llama4TextConfig.default_theta

// Sizes, with HF's null handling: head_dim null -> D / H, num_key_value_heads null -> H.
void read_sizes(const FieldReader& r, TextConfig& c) {
  c.vocab_size = r.size("vocab_size", kMaxConfigDim);
  c.hidden_size = r.size("hidden_size", kMaxConfigDim);
  c.intermediate_size = r.size("intermediate_size", kMaxConfigDim);
  c.intermediate_size_mlp = r.size("intermediate_size_mlp", kMaxConfigDim);
  c.num_hidden_layers = r.size("num_hidden_layers", kMaxConfigCount);
  c.num_attention_heads = r.size("num_attention_heads", kMaxConfigCount);
  c.num_local_experts = r.size("num_local_experts", kMaxConfigCount);
  c.num_experts_per_tok = r.size("num_experts_per_tok", kMaxConfigCount);
  c.max_position_embeddings = r.size("max_position_embeddings", kMaxConfigPositions);
  const int64_t heads = c.num_attention_heads;
  c.num_key_value_heads = r.raw("num_key_value_heads").is_null() ? heads : r.size("num_key_value_heads", kMaxConfigCount);
  if (r.raw("head_dim").is_null()) {
    if (c.hidden_size % heads)
      throw r.fail("hidden_size", "head_dim is null, so hidden_size (" + std::to_string(c.hidden_size) +
                                      ") must be divisible by num_attention_heads (" + std::to_string(heads) + ")");
    c.head_dim = c.hidden_size / heads;
  } else {
    c.head_dim = r.size("head_dim", kMaxConfigDim);
  }
  if (r.raw("attention_chunk_size").is_null())  // HF 5.23 always builds the chunked mask (LLAMA4.md §2.3)
    throw r.fail("attention_chunk_size", "null is not supported (transformers 5.23 cannot run it either); "
                                         "give the chunk size, e.g. 8192");
  c.attention_chunk_size = r.size("attention_chunk_size", kMaxConfigPositions);
}

// no_rope_layers / moe_layers / layer_types, derived exactly as Llama4TextConfig.__post_init__.
void read_layer_pattern(const FieldReader& r, TextConfig& c) {
  const int64_t n = c.num_hidden_layers;
  c.no_rope_layer_interval = r.integer("no_rope_layer_interval");
  const json& nrl = r.raw("no_rope_layers");
  c.no_rope_layers.clear();
  if (!truthy(nrl)) {  // HF tests truthiness: missing, null and [] all derive
    for (int64_t i = 0; i < n; ++i) c.no_rope_layers.push_back(int((i + 1) % c.no_rope_layer_interval != 0));
  } else if (!nrl.is_array() || int64_t(nrl.size()) != n) {
    const std::string got = nrl.is_array() ? std::to_string(nrl.size()) : py_repr(nrl);
    throw r.fail("no_rope_layers", "expected a list of " + std::to_string(n) + " entries (num_hidden_layers), got " + got);
  } else {
    for (const json& x : nrl) {  // HF's strict check rejects bools and floats
      if (!is_int(x) || (x.get<int64_t>() != 0 && x.get<int64_t>() != 1))
        throw r.fail("no_rope_layers", "entries must be 0 (NoPE) or 1 (RoPE), got " + py_repr(nrl));
      c.no_rope_layers.push_back(int(x.get<int64_t>()));
    }
  }

  c.interleave_moe_layer_step = r.integer("interleave_moe_layer_step");
  const json& moe = r.raw("moe_layers");
  std::set<int64_t> layers;
  if (moe.is_null()) {  // HF honours an explicit list, even an empty one
    for (int64_t i = c.interleave_moe_layer_step - 1; i < n; i += c.interleave_moe_layer_step) layers.insert(i);
  } else {
    bool ok = moe.is_array();
    for (size_t k = 0; ok && k < moe.size(); ++k) ok = is_int(moe[k]);
    if (!ok) throw r.fail("moe_layers", "expected a list of layer indices, got " + py_repr(moe));
    json bad = json::array();
    for (const json& x : moe) {
      const bool in_range = x.is_number_unsigned() ? x.get<uint64_t>() < uint64_t(n) : false;
      if (!in_range) bad.push_back(x);
      else layers.insert(x.get<int64_t>());
    }
    if (!bad.empty())
      throw r.fail("moe_layers", "indices " + py_repr(bad) + " out of range for " + std::to_string(n) + " layers");
  }
  c.moe_layers.assign(layers.begin(), layers.end());

  // HF masks by layer_types but rotates by no_rope_layers; the engine ties them, so they must agree.
  const json& given = r.raw("layer_types");
  if (!given.is_null()) {
    const std::vector<std::string> types = c.layer_types();
    bool same = given.is_array() && given.size() == types.size();
    for (size_t i = 0; same && i < types.size(); ++i) same = given[i].is_string() && given[i] == types[i];
    if (!same) {
      json nrl_list = c.no_rope_layers;
      throw r.fail("layer_types", py_repr(given) + " disagrees with no_rope_layers " + py_repr(nrl_list) +
                                      " (RoPE layers must be chunked_attention, NoPE full_attention)");
    }
  }
}

// RoPE parameters, with HF's precedence (convert_rope_params_to_dict): a truthy legacy
// `rope_scaling` wins over `rope_parameters`; theta comes from the dict, else the top-level
// `rope_theta`, else the class default; the legacy `type` key stands in for `rope_type`.
void read_rope(const FieldReader& r, TextConfig& c) {
  const json& d = r.section();
  static const json kEmpty = json::object();
  const json& legacy = d.contains("rope_scaling") ? d.at("rope_scaling") : kEmpty;
  const json& params = d.contains("rope_parameters") ? d.at("rope_parameters") : kEmpty;
  const json& chosen = truthy(legacy) ? legacy : truthy(params) ? params : kEmpty;
  const std::string key = truthy(legacy) ? "rope_scaling" : "rope_parameters";
  if (!chosen.is_object()) throw r.fail(key, "expected a JSON object, got " + py_repr(chosen));
  json p = chosen;
  if (!p.contains("rope_theta")) p["rope_theta"] = d.contains("rope_theta") ? d.at("rope_theta") : json(kDefaultRopeTheta);
  if (!p.contains("rope_type")) p["rope_type"] = p.contains("type") ? p.at("type") : json("default");
  const json& type = p.at("rope_type");
  if (type != "default" && type != "llama3")
    throw r.fail(key + ".rope_type", "unsupported rope_type " + py_repr(type) + " (supported: default, llama3)");
  c.rope_theta = r.number(key + ".rope_theta", true, &p.at("rope_theta"));
  c.rope_scaling = RopeScaling{};
  c.rope_scaling.factor = c.rope_scaling.low_freq_factor = c.rope_scaling.high_freq_factor = 1.0f;
  c.rope_scaling.original_max_position_embeddings = c.max_position_embeddings;
  if (type == "llama3") {
    // HF's standardize_rope_params: a missing original length falls back to max_position_embeddings,
    // and a top-level original_max_position_embeddings overrides the dict at model build.
    if (!p.contains("original_max_position_embeddings")) p["original_max_position_embeddings"] = c.max_position_embeddings;
    if (d.contains("original_max_position_embeddings"))
      p["original_max_position_embeddings"] = d.at("original_max_position_embeddings");
    double f[3];
    const char* names[3] = {"factor", "low_freq_factor", "high_freq_factor"};
    for (int k = 0; k < 3; ++k) {
      if (!p.contains(names[k])) throw r.fail(key + "." + names[k], "required for rope_type 'llama3' but missing");
      f[k] = r.number(key + "." + names[k], true, &p.at(names[k]));
    }
    if (f[2] < f[1])
      throw r.fail(key + ".high_freq_factor", "must be >= low_freq_factor (" + py_repr(json(f[1])) + "), got " +
                                                 py_repr(json(f[2])));
    c.rope_scaling.type = RopeScaling::Type::Llama3;
    c.rope_scaling.factor = float(f[0]);
    c.rope_scaling.low_freq_factor = float(f[1]);
    c.rope_scaling.high_freq_factor = float(f[2]);
    c.rope_scaling.original_max_position_embeddings =
        r.integer(key + ".original_max_position_embeddings", 1, &p.at("original_max_position_embeddings"));
  }
  const json prf = p.contains("partial_rotary_factor") ? p.at("partial_rotary_factor") : json(1.0);
  if (!((prf.is_number() || prf.is_boolean()) && prf.get<double>() == 1.0))
    throw r.fail(key + ".partial_rotary_factor", "only 1.0 is supported, got " + py_repr(prf));
  c.rope_parameters = p.dump();
}

// attn_temperature_tuning: 4.51-era hub configs write the number 4 (LLAMA4.md §9 item 2).
bool read_truthy(const FieldReader& r, const std::string& key) {
  const json& v = r.raw(key);
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number() && std::isfinite(v.get<double>())) return v.get<double>() != 0.0;
  throw r.fail(key, "expected true/false or a number, got " + py_repr(v));
}

// Cross-field checks: configs the engine (and HF) cannot run.
void check_text(const FieldReader& r, const TextConfig& c) {
  if (c.num_attention_heads % c.num_key_value_heads)
    throw r.fail("num_key_value_heads", "num_attention_heads (" + std::to_string(c.num_attention_heads) +
                                            ") must be a multiple of num_key_value_heads (" +
                                            std::to_string(c.num_key_value_heads) + ")");
  if (c.num_experts_per_tok > c.num_local_experts)
    throw r.fail("num_experts_per_tok", std::to_string(c.num_experts_per_tok) + " > num_local_experts (" +
                                            std::to_string(c.num_local_experts) + ")");
  const bool any_rope = std::any_of(c.no_rope_layers.begin(), c.no_rope_layers.end(), [](int v) { return v != 0; });
  if (c.head_dim % 2 && any_rope)
    throw r.fail("head_dim", "RoPE rotates pairs, so head_dim must be even, got " + std::to_string(c.head_dim));
  if (r.raw("hidden_act") != "silu")
    throw r.fail("hidden_act", "only 'silu' is supported, got " + py_repr(r.raw("hidden_act")));
  const json& bias = r.raw("attention_bias");
  if (!(bias.is_null() || bias == false || (bias.is_number() && bias.get<double>() == 0.0)))
    throw r.fail("attention_bias", "Llama 4 has no attention bias; true is not supported");
}

}  // namespace

TextConfig text_config_from_json(const json& d, const std::string& section, const std::string& file) {
  if (!d.is_object())
    throw ConfigError(section.empty() ? "text_config" : section, "expected a JSON object, got " + type_name(d), file);
  const FieldReader r(d, text_defaults(), section, file);
  TextConfig c;
  read_sizes(r, c);
  read_layer_pattern(r, c);
  read_rope(r, c);
  check_text(r, c);
  c.hidden_act = "silu";
  c.rms_norm_eps = r.number("rms_norm_eps", false);
  c.use_qk_norm = r.boolean("use_qk_norm");
  c.attn_temperature_tuning = read_truthy(r, "attn_temperature_tuning");
  c.floor_scale = r.integer("floor_scale");
  c.attn_scale = r.number("attn_scale", false);
  c.attention_bias = r.boolean("attention_bias");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings");
  c.bos_token_id = r.token_ids("bos_token_id");
  c.eos_token_id = r.token_ids("eos_token_id");
  c.pad_token_id = r.token_ids("pad_token_id");
  return c;
}

}  // namespace llama4::checkpoint
