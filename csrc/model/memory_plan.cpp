// Weight tables with dtypes and the FP8 expert layers of a plan (llama4/memory_plan.h).
#include "llama4/memory_plan.h"

#include <algorithm>

#include "llama4/model.h"

namespace llama4 {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

int64_t WeightSpec::nbytes() const {
  int64_t n = int64_t(element_size(dtype));
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<WeightSpec> text_weight_specs(const TextConfig& config, DType dtype,
                                          const std::vector<int>& fp8_moe_layers,
                                          const std::vector<int>& int4_mlp_layers) {
  const auto table = expected_text_weights(config, fp8_moe_layers, int4_mlp_layers);
  std::vector<WeightSpec> out;
  out.reserve(table.size());
  for (const auto& [name, shape] : table) {
    // Only quantized weights list scales: a weight with a scale is e4m3 (FP8) or packed uint8 (INT4),
    // a scale is float32 (FP8) or bfloat16 (INT4). (INT4 shared experts / MLPs only in INT4 models.)
    const std::string scale = name + "_scale";  // (a C++17 lambda cannot capture a structured binding)
    const bool has_scale = std::any_of(table.begin(), table.end(), [&](const auto& e) { return e.first == scale; });
    const bool int4 = config.moe_int4_group_size > 0;
    const DType d = has_scale                  ? (int4 ? DType::U8 : DType::F8E4M3)
                    : ends_with(name, "_scale") ? (int4 ? DType::BF16 : DType::F32)
                                                : dtype;
    out.push_back({name, shape, d});
  }
  return out;
}

std::vector<WeightSpec> vision_weight_specs(const VisionConfig& config, DType dtype) {
  std::vector<WeightSpec> out;
  for (const auto& [name, shape] : expected_vision_weights(config)) out.push_back({name, shape, dtype});
  return out;
}

std::vector<int> int4_mlp_layers(const TextConfig& config, const Fp8Plan& plan, const std::string& root) {
  std::vector<int> out;
  if (plan.int4_group_size <= 0) return out;
  for (int i = 0; i < int(config.num_hidden_layers); ++i) {
    if (!plan.stored) {
      if (!plan.skip_layers.count(i)) out.push_back(i);
      continue;
    }
    // The loader rejects a module whose projections are partly ignored: gate_proj stands for them.
    const std::string ff = root + "model.layers." + std::to_string(i) + ".feed_forward.";
    if (!plan.ignores(ff + (config.is_moe_layer(i) ? "shared_expert.gate_proj" : "gate_proj"), root)) out.push_back(i);
  }
  return out;
}

std::vector<int> fp8_expert_layers(const TextConfig& config, const Fp8Plan& plan, const std::string& root) {
  std::vector<int> out;
  for (int i = 0; i < int(config.num_hidden_layers); ++i) {
    if (!config.is_moe_layer(i)) continue;
    if (!plan.stored) {
      if (!plan.skip_layers.count(i)) out.push_back(i);
      continue;
    }
    // Fused (fbgemm) and per-expert (compressed-tensors) module names; the loader rejects a layer
    // whose experts are partly ignored, so the first expert's gate_proj stands for them all.
    const std::string ff = root + "model.layers." + std::to_string(i) + ".feed_forward.experts";
    if (!plan.ignores(ff, root) && !plan.ignores(ff + ".0.gate_proj", root)) out.push_back(i);
  }
  return out;
}

}  // namespace llama4
