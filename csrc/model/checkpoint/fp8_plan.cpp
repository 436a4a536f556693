// Quantized routed experts: what a checkpoint's quantization_config says (compressed-tensors FP8
// per channel or INT4 pack-quantized, fbgemm_fp8), and what a load asks for (quantization "fp8" or
// "int4" at load). See llama4/checkpoint.h.
#include <cmath>
#include <regex>

#include "llama4/checkpoint.h"
#include "llama4/error.h"
#include "llama4/moe_int4.h"
#include "model/checkpoint/json_util.h"

namespace llama4 {

namespace {

using checkpoint::json;
using checkpoint::py_repr;

constexpr double kMetaActivationScaleUb = 1200.0;  // Meta's fp8_mixed recipe, FbgemmFp8Config's default

const json& get(const json& d, const char* key) {
  static const json kNull;
  return d.is_object() && d.contains(key) ? d.at(key) : kNull;
}

// The value's str() for a message: None/True/1.5/'abc' spelled as Python's f-string would.
std::string str(const json& v) { return v.is_string() ? v.get<std::string>() : py_repr(v); }

std::vector<std::string> string_list(const json& v) {
  std::vector<std::string> out;
  if (v.is_array())
    for (const json& x : v) out.push_back(str(x));
  return out;
}

// One config group's INT4 weights (W4A16 pack-quantized); returns the group size.
int64_t int4_group(const json& w, const json& g, const std::string& at) {
  const json &strategy = get(w, "strategy"), &group = get(w, "group_size");
  if (get(w, "symmetric") == false)
    throw CheckpointError(at + ".weights is asymmetric (zero points); supported: symmetric int4");
  if (strategy != "group")
    throw CheckpointError(at + ".weights.strategy is " + py_repr(strategy) +
                          "; supported for 4-bit int: 'group' (one scale per group along the input)");
  if (!(group.is_number_integer() && group.get<int64_t>() > 0))
    throw CheckpointError(at + ".weights.group_size must be a positive integer, got " + py_repr(group));
  if (checkpoint::truthy(get(g, "input_activations")))
    throw CheckpointError(at + ".input_activations is set; supported for 4-bit int weights: W4A16 "
                          "(input_activations null, the activations stay bfloat16)");
  const json& actorder = get(w, "actorder");
  if (!(actorder.is_null() || actorder == "weight"))
    throw CheckpointError(at + ".weights.actorder is " + py_repr(actorder) +
                          "; supported: null or 'weight' (no g_idx permutation)");
  return group.get<int64_t>();
}

Fp8Plan compressed_tensors(const json& qc, const std::string& where) {
  const json& groups = get(qc, "config_groups");
  if (!groups.is_object() || groups.empty()) throw CheckpointError(where + " has no config_groups");
  int64_t int4 = -1;  // -1: not decided yet; 0: FP8; > 0: INT4 with that group size
  for (const auto& [name, g] : groups.items()) {
    const std::string at = where + ".config_groups." + name;
    const json& w = get(g, "weights");
    const json &bits = get(w, "num_bits"), &type = get(w, "type"), &strategy = get(w, "strategy");
    int64_t this_int4 = 0;
    if (bits.is_number() && bits.get<double>() == 4 && type == "int") {
      if (get(qc, "format") != "pack-quantized")
        throw CheckpointError(where + ".format is " + py_repr(get(qc, "format")) +
                              "; 4-bit int weights are supported in format 'pack-quantized'");
      this_int4 = int4_group(w, g, at);
    } else if (!(bits.is_number() && bits.get<double>() == 8 && type == "float" && strategy == "channel")) {
      throw CheckpointError(at + ".weights is " + str(bits) + "-bit " + str(type) + " with strategy " +
                            py_repr(strategy) + "; supported: 8-bit float with strategy 'channel' (one "
                            "scale per output channel), 4-bit int with strategy 'group' (pack-quantized)");
    } else {
      if (get(w, "symmetric") == false)
        throw CheckpointError(at + ".weights is asymmetric; supported: symmetric");
      const json& act = get(g, "input_activations");
      const json &dynamic = get(act, "dynamic"), &act_strategy = get(act, "strategy");
      if (checkpoint::truthy(act) && (dynamic != true || !(act_strategy == "token" || act_strategy.is_null())))
        throw CheckpointError(at + ".input_activations must be dynamic per token, got strategy " +
                              py_repr(act_strategy) + ", dynamic " + py_repr(dynamic));
    }
    if (int4 >= 0 && this_int4 != int4)
      throw CheckpointError(at + ".weights differs from the other config groups; the engine runs every "
                            "quantized expert in one format (FP8, or INT4 with one group size)");
    int4 = this_int4;
  }
  Fp8Plan plan;
  plan.stored = true;
  plan.method = "compressed-tensors";
  plan.int4_group_size = int4;
  plan.ignore = string_list(get(qc, "ignore"));
  return plan;
}

bool has_dense_layers(const TextConfig& c) {
  for (int i = 0; i < int(c.num_hidden_layers); ++i)
    if (!c.is_moe_layer(i)) return true;
  return false;
}

// An INT4 group size must be a whole number of the kernels' steps and divide every reduction size
// (hidden_size for gate_up, intermediate_size for the experts' down, intermediate_size_mlp for the
// dense MLPs' down when there are dense layers): no partial groups.
bool int4_group_fits(const TextConfig& c, int64_t g) {
  return g >= kMoeInt4GroupStep && g % kMoeInt4GroupStep == 0 && c.hidden_size % g == 0 &&
         c.intermediate_size % g == 0 && (!has_dense_layers(c) || c.intermediate_size_mlp % g == 0);
}
std::string int4_group_rule(const TextConfig& c) {
  const std::string I = "intermediate_size " + std::to_string(c.intermediate_size);
  return "a multiple of " + std::to_string(kMoeInt4GroupStep) + " dividing hidden_size " +
         std::to_string(c.hidden_size) + (has_dense_layers(c) ? ", " + I + " and intermediate_size_mlp " +
                                                                    std::to_string(c.intermediate_size_mlp)
                                                              : " and " + I);
}

Fp8Plan fbgemm(const json& qc, const std::string& where) {
  const json ub = qc.contains("activation_scale_ub") ? qc.at("activation_scale_ub") : json(kMetaActivationScaleUb);
  if (!(ub.is_number() && ub.get<double>() >= 0))
    throw CheckpointError(where + ".activation_scale_ub must be a number >= 0, got " + py_repr(ub));
  Fp8Plan plan;
  plan.stored = true;
  plan.method = "fbgemm_fp8";
  plan.activation_scale_ub = ub.get<double>();
  plan.ignore = string_list(get(qc, "modules_to_not_convert"));
  return plan;
}

}  // namespace

bool Fp8Plan::ignores(const std::string& module, const std::string& root) const {
  std::vector<std::string> names{module};
  if (!root.empty() && module.compare(0, root.size(), root) == 0) names.push_back(module.substr(root.size()));
  for (const std::string& pattern : ignore) {
    for (const std::string& name : names) {
      if (method == "fbgemm_fp8") {
        if (name.find(pattern) != std::string::npos) return true;
      } else if (pattern.compare(0, 3, "re:") == 0) {
        try {  // re.match: anchored at the start only
          if (std::regex_search(name, std::regex(pattern.substr(3)), std::regex_constants::match_continuous))
            return true;
        } catch (const std::regex_error& e) {
          throw CheckpointError("quantization_config ignore pattern '" + pattern + "' is not a valid regex (" +
                                e.what() + ")");
        }
      } else if (pattern == name) {
        return true;
      }
    }
  }
  return false;
}

std::optional<Fp8Plan> make_fp8_plan(const ModelConfig& config, const Fp8Request& request, const std::string& where) {
  if (!(request.quantization.empty() || request.quantization == "fp8" || request.quantization == "int4"))
    throw ValueError("quantization must be one of (None, 'fp8', 'int4'), got '" + request.quantization + "'");
  if (request.int4_group_size != 0 && request.quantization != "int4")
    throw ValueError("int4_group_size applies to quantization='int4' at load");
  const auto& ub = request.activation_scale_ub;
  if (ub && !(*ub >= 0))
    throw ValueError("activation_scale_ub must be >= 0 (0: no bound), got " + std::to_string(*ub));
  const std::string qwhere = (where.empty() ? std::string("config.json") : where + "/config.json") + ": quantization_config";
  if (!config.quantization_config.empty()) {
    json qc;
    std::string error;
    if (!checkpoint::parse_json(config.quantization_config, qc, error) || !qc.is_object())
      throw CheckpointError(qwhere + " must be an object");
    if (!request.skip_layers.empty())
      throw ValueError("fp8_skip_layers applies to quantization at load; this checkpoint is already quantized "
                       "(its quantization_config decides which experts are)");
    const json& method = get(qc, "quant_method");
    Fp8Plan plan;
    if (method == "compressed-tensors") {
      plan = compressed_tensors(qc, qwhere);
    } else if (method == "fbgemm_fp8") {
      plan = fbgemm(qc, qwhere);
    } else {
      throw CheckpointError(qwhere + ".quant_method " + py_repr(method) +
                            " is not supported (supported: 'compressed-tensors' FP8 per channel, 'fbgemm_fp8')");
    }
    const bool int4 = plan.int4_group_size > 0;
    if (!request.quantization.empty() && (request.quantization == "int4") != int4)
      throw ValueError("quantization='" + request.quantization + "', but this checkpoint stores " +
                       (int4 ? "INT4" : "FP8") + " experts (its quantization_config decides)");
    if (int4) {
      if (ub) throw ValueError("activation_scale_ub applies to FP8 experts; this checkpoint's experts are INT4");
      if (!int4_group_fits(config.text, plan.int4_group_size))
        throw CheckpointError(qwhere + ": group_size " + std::to_string(plan.int4_group_size) + " must be " +
                              int4_group_rule(config.text));
    }
    if (ub) plan.activation_scale_ub = *ub;
    return plan;
  }
  if (request.quantization.empty()) return std::nullopt;
  const int64_t n = config.text.num_hidden_layers;
  Fp8Plan plan;
  plan.method = request.quantization;
  if (request.quantization == "int4") {
    if (ub) throw ValueError("activation_scale_ub applies to quantization='fp8' (INT4 experts keep bfloat16 activations)");
    plan.int4_group_size = request.int4_group_size ? request.int4_group_size : kMoeInt4DefaultGroup;
    if (!int4_group_fits(config.text, plan.int4_group_size) || plan.int4_group_size > kMoeInt4MaxQuantGroup)
      throw ValueError("int4_group_size " + std::to_string(plan.int4_group_size) + " must be " +
                       int4_group_rule(config.text) + ", at most " + std::to_string(kMoeInt4MaxQuantGroup));
  } else {
    plan.activation_scale_ub = ub ? *ub : kMetaActivationScaleUb;
  }
  for (int64_t i : request.skip_layers) {
    if (!(-n <= i && i < n))
      throw ValueError("fp8_skip_layers: " + std::to_string(i) + " is not a layer index of this " + std::to_string(n) +
                       "-layer model");
    plan.skip_layers.insert(((i % n) + n) % n);
  }
  return plan;
}

}  // namespace llama4
