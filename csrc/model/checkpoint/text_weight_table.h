// The one table that maps every engine tensor of the text decoder (llama4/model.h) to the Hugging
// Face tensor(s) it is built from. An entry may list several sources (alternative checkpoint
// layouts: fused vs per-expert experts, bf16 vs FP8); text_weights.cpp picks the first whose first
// tensor is present with an accepted dtype.
#pragma once
#include <string>
#include <vector>

#include "model/checkpoint/weight_plan.h"

namespace llama4::checkpoint {

// Which layers have the entry.
enum class Scope : uint8_t {
  Model,   // once
  Layer,   // every layer
  Moe,     // moe_layers
  Dense,   // the other layers
  MoeQuant,  // MoE layers whose experts the checkpoint stores quantized, FP8 or INT4 (their scales)
  SharedQuant,  // MoE layers whose shared expert the checkpoint stores INT4 (its scales)
  DenseQuant,   // dense layers whose MLP the checkpoint stores INT4 (its scales)
};

struct SourceSpec {
  // HF names relative to the text root ("language_model." or ""), with {i} = layer and, when
  // per_expert, {e} = expert; shapes[k] is names[k]'s shape in dimension symbols (see dims()).
  // Per-expert names expand expert-major: n0(e=0), n1(e=0), n0(e=1), ...
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> shapes;
  Layout layout = Layout::Concat;
  bool per_expert = false;
  bool fp8 = false;        // F8_E4M3 tensors whose bytes the engine keeps (else F32/F16/BF16)
  bool int4 = false;       // INT4 pack-quantized: I32 packed weights or their BF16 scales
  bool tied_only = false;  // only when tie_word_embeddings (lm_head read from the embedding)

  SourceSpec fused_experts() const { SourceSpec s = *this; s.layout = Layout::FusedExperts; return s; }
  SourceSpec each_expert() const { SourceSpec s = *this; s.per_expert = true; return s; }
  SourceSpec in_fp8() const { SourceSpec s = *this; s.fp8 = true; return s; }
  SourceSpec in_int4() const { SourceSpec s = *this; s.int4 = true; return s; }
  SourceSpec if_tied() const { SourceSpec s = *this; s.tied_only = true; return s; }
};

struct EntrySpec {
  std::string name;  // engine name, {i} = layer
  Scope scope;
  std::vector<std::string> shape;
  std::vector<SourceSpec> sources;
  bool float32 = false;  // engine dtype float32 (FP8 scales); else the model dtype
};

const std::vector<EntrySpec>& text_weight_table();
// The engine's expert weights: FP8, INT4 or quantizable, and consistent within a layer.
constexpr const char* kExpertGateUp = "layers.{i}.moe.gate_up";
constexpr const char* kExpertDown = "layers.{i}.moe.down";
// The shared expert's and the dense MLP's weights: INT4 (pack-quantized, or quantized at load with
// quantization="int4") or not, one format per module (gate_up and down alike).
constexpr const char* kSharedGateUp = "layers.{i}.moe.shared_gate_up";
constexpr const char* kSharedDown = "layers.{i}.moe.shared_down";
constexpr const char* kMlpGateUp = "layers.{i}.mlp.gate_up";
constexpr const char* kMlpDown = "layers.{i}.mlp.down";

}  // namespace llama4::checkpoint
