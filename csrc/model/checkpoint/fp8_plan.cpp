// FP8 routed experts: what a checkpoint's quantization_config says (compressed-tensors,
// fbgemm_fp8), and what a load asks for (quantization "fp8" at load). See llama4/checkpoint.h.
#include <cmath>
#include <regex>

#include "llama4/checkpoint.h"
#include "llama4/error.h"
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

Fp8Plan compressed_tensors(const json& qc, const std::string& where) {
  const json& groups = get(qc, "config_groups");
  if (!groups.is_object() || groups.empty()) throw CheckpointError(where + " has no config_groups");
  for (const auto& [name, g] : groups.items()) {
    const json& w = get(g, "weights");
    const json &bits = get(w, "num_bits"), &type = get(w, "type"), &strategy = get(w, "strategy");
    if (!(bits.is_number() && bits.get<double>() == 8 && type == "float" && strategy == "channel"))
      throw CheckpointError(where + ".config_groups." + name + ".weights is " + str(bits) + "-bit " + str(type) +
                            " with strategy " + py_repr(strategy) +
                            "; supported: 8-bit float, strategy 'channel' (one scale per output channel)");
    if (get(w, "symmetric") == false)
      throw CheckpointError(where + ".config_groups." + name + ".weights is asymmetric; supported: symmetric");
    const json& act = get(g, "input_activations");
    const json &dynamic = get(act, "dynamic"), &act_strategy = get(act, "strategy");
    if (checkpoint::truthy(act) && (dynamic != true || !(act_strategy == "token" || act_strategy.is_null())))
      throw CheckpointError(where + ".config_groups." + name + ".input_activations must be dynamic per token, got strategy " +
                            py_repr(act_strategy) + ", dynamic " + py_repr(dynamic));
  }
  Fp8Plan plan;
  plan.stored = true;
  plan.method = "compressed-tensors";
  plan.ignore = string_list(get(qc, "ignore"));
  return plan;
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
  if (!(request.quantization.empty() || request.quantization == "fp8"))
    throw ValueError("quantization must be one of (None, 'fp8'), got '" + request.quantization + "'");
  const auto& ub = request.activation_scale_ub;
  if (ub && !(*ub >= 0))
    throw ValueError("activation_scale_ub must be >= 0 (0: no bound), got " + std::to_string(*ub));
  const std::string qwhere = (where.empty() ? std::string("config.json") : where) + ": quantization_config";
  if (!config.quantization_config.empty()) {
    json qc;
    std::string error;
    if (!checkpoint::parse_json(config.quantization_config, qc, error) || !qc.is_object())
      throw CheckpointError(qwhere + " must be an object");
    if (!request.skip_layers.empty())
      throw ValueError("fp8_skip_layers applies to quantization at load; this checkpoint is already FP8 (its "
                       "quantization_config decides which experts are quantized)");
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
    if (ub) plan.activation_scale_ub = *ub;
    return plan;
  }
  if (request.quantization.empty()) return std::nullopt;
  const int64_t n = config.text.num_hidden_layers;
  Fp8Plan plan;
  plan.method = "fp8";
  plan.activation_scale_ub = ub ? *ub : kMetaActivationScaleUb;
  for (int64_t i : request.skip_layers) {
    if (!(-n <= i && i < n))
      throw ValueError("fp8_skip_layers: " + std::to_string(i) + " is not a layer index of this " + std::to_string(n) +
                       "-layer model");
    plan.skip_layers.insert(((i % n) + n) % n);
  }
  return plan;
}

}  // namespace llama4
