// What a model occupies in memory, from its config alone: the facts the memory planner
// (llama4_native.plan) shares with the engine, so that both count the same bytes.
//   text_weight_specs    every text-decoder tensor with its shape and dtype (the table TextModel
//                        validates against: model dtype, e4m3 FP8 experts, float32 scales)
//   vision_weight_specs  the vision tower's tensors (all in the model dtype)
//   fp8_expert_layers    the MoE layers whose routed experts an Fp8Plan makes FP8 (or INT4)
//   int4_mlp_layers      the layers whose shared expert / dense MLP an INT4 Fp8Plan makes INT4
// The KV cache's bytes are KVCacheConfig's (page_bytes, from_budget, pool_bytes; llama4/kv_cache.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llama4/checkpoint.h"
#include "llama4/config.h"
#include "llama4/tensor.h"
#include "llama4/vision.h"

namespace llama4 {

struct WeightSpec {
  std::string name;  // engine name (llama4/model.h, llama4/vision.h)
  Shape shape;
  DType dtype;
  int64_t nbytes() const;
};

// The tensors TextModel(config, dtype, ...) requires, in expected_text_weights order, with the
// dtype each must have: routed experts of `fp8_moe_layers` are e4m3 with float32 scales (or, when
// config.moe_int4_group_size > 0, packed INT4 uint8 with bfloat16 scales), the shared expert or
// dense MLP of `int4_mlp_layers` packed INT4 with bfloat16 scales, the rest `dtype`.
std::vector<WeightSpec> text_weight_specs(const TextConfig& config, DType dtype,
                                          const std::vector<int>& fp8_moe_layers = {},
                                          const std::vector<int>& int4_mlp_layers = {});
std::vector<WeightSpec> vision_weight_specs(const VisionConfig& config, DType dtype);

// The MoE layers whose routed experts load as FP8 under `plan`: quantized at load, every MoE layer
// but plan.skip_layers; stored, every MoE layer whose experts module the ignore list does not name
// (`root` is "language_model." for Llama4ForConditionalGeneration, "" for Llama4ForCausalLM). The
// loader checks a stored checkpoint's tensors against the same rule.
std::vector<int> fp8_expert_layers(const TextConfig& config, const Fp8Plan& plan, const std::string& root);

// The layers whose shared expert (MoE layers) or dense MLP loads as INT4 under `plan` (none unless
// plan.int4_group_size > 0): quantized at load, every layer but plan.skip_layers (the routed
// experts' rule); stored, every layer whose shared_expert / MLP modules the ignore list does not
// name. The loader checks a stored checkpoint's tensors against the same rule.
std::vector<int> int4_mlp_layers(const TextConfig& config, const Fp8Plan& plan, const std::string& root);

}  // namespace llama4
