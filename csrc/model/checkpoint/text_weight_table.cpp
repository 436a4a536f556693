// The text decoder's weight table (see text_weight_table.h). Engine contract (D hidden, H heads, KV
// kv heads, d head_dim, E experts, I intermediate_size, Imlp intermediate_size_mlp, V vocab;
// nn.Linear layout [out, in]) as llama4/model.h states it.
#include "model/checkpoint/text_weight_table.h"

namespace llama4::checkpoint {

namespace {

SourceSpec src(std::vector<std::string> names, std::vector<std::vector<std::string>> shapes) {
  SourceSpec s;
  s.names = std::move(names);
  s.shapes = std::move(shapes);
  return s;
}

EntrySpec entry(std::string name, Scope scope, std::vector<std::string> shape, std::vector<SourceSpec> sources,
                bool float32 = false) {
  return EntrySpec{std::move(name), scope, std::move(shape), std::move(sources), float32};
}

std::vector<EntrySpec> build() {
  const std::string L = "model.layers.{i}.", FF = L + "feed_forward.", X = FF + "experts.";
  // HF fused experts are x @ W ([E, in, out]); the engine's [E, out, in] is their transposed view
  // (gate_up's columns [0, I) are the gate, [I, 2I) the up). Per-expert tensors are nn.Linear
  // already and stack expert after expert (gate rows, then up rows).
  const SourceSpec fused_gate_up = src({X + "gate_up_proj"}, {{"E", "D", "2I"}}).fused_experts();
  const SourceSpec split_gate_up =
      src({X + "{e}.gate_proj.weight", X + "{e}.up_proj.weight"}, {{"I", "D"}, {"I", "D"}}).each_expert();
  const SourceSpec fused_down = src({X + "down_proj"}, {{"E", "I", "D"}}).fused_experts();
  const SourceSpec split_down = src({X + "{e}.down_proj.weight"}, {{"D", "I"}}).each_expert();
  // compressed-tensors pack-quantized INT4: int32 words of 8 nibbles along the input, bf16 scales
  // per group of G inputs (D8 = D / 8, DG = D / G, ...).
  const SourceSpec int4_gate_up = src({X + "{e}.gate_proj.weight_packed", X + "{e}.up_proj.weight_packed"},
                                      {{"I", "D8"}, {"I", "D8"}}).each_expert().in_int4();
  const SourceSpec int4_down = src({X + "{e}.down_proj.weight_packed"}, {{"D", "I8"}}).each_expert().in_int4();
  // The shared expert and the dense MLP (nn.Linear gate/up/down) as they are, or pack-quantized as
  // llm-compressor's Llama 4 recipe writes them (targets "Linear": every MLP projection).
  const auto mlp = [](const std::string& m, const std::string& I) {
    return std::vector<SourceSpec>{
        src({m + "gate_proj.weight", m + "up_proj.weight"}, {{I, "D"}, {I, "D"}}),
        src({m + "gate_proj.weight_packed", m + "up_proj.weight_packed"}, {{I, "D8"}, {I, "D8"}}).in_int4(),
        src({m + "down_proj.weight"}, {{"D", I}}),
        src({m + "down_proj.weight_packed"}, {{"D", I + "8"}}).in_int4(),
        src({m + "gate_proj.weight_scale", m + "up_proj.weight_scale"}, {{I, "DG"}, {I, "DG"}}).in_int4(),
        src({m + "down_proj.weight_scale"}, {{"D", I + "G"}}).in_int4()};
  };
  const std::vector<SourceSpec> shared = mlp(FF + "shared_expert.", "I"), dense = mlp(FF, "Imlp");
  return {
      entry("embed_tokens", Scope::Model, {"V", "D"}, {src({"model.embed_tokens.weight"}, {{"V", "D"}})}),
      entry("norm", Scope::Model, {"D"}, {src({"model.norm.weight"}, {{"D"}})}),
      entry("lm_head", Scope::Model, {"V", "D"},
            {src({"lm_head.weight"}, {{"V", "D"}}), src({"model.embed_tokens.weight"}, {{"V", "D"}}).if_tied()}),
      entry("layers.{i}.input_layernorm", Scope::Layer, {"D"}, {src({L + "input_layernorm.weight"}, {{"D"}})}),
      entry("layers.{i}.post_attention_layernorm", Scope::Layer, {"D"},
            {src({L + "post_attention_layernorm.weight"}, {{"D"}})}),
      entry("layers.{i}.attn.qkv", Scope::Layer, {"QKV", "D"},
            {src({L + "self_attn.q_proj.weight", L + "self_attn.k_proj.weight", L + "self_attn.v_proj.weight"},
                 {{"Hd", "D"}, {"KVd", "D"}, {"KVd", "D"}})}),
      entry("layers.{i}.attn.o", Scope::Layer, {"D", "Hd"}, {src({L + "self_attn.o_proj.weight"}, {{"D", "Hd"}})}),
      entry("layers.{i}.moe.router", Scope::Moe, {"E", "D"}, {src({FF + "router.weight"}, {{"E", "D"}})}),
      // bf16/fp32 layouts first; the FP8 twins share their names (fbgemm_fp8: fused,
      // compressed-tensors: per expert) and are told apart by dtype.
      entry(kExpertGateUp, Scope::Moe, {"E", "2I", "D"},
            {fused_gate_up, split_gate_up, fused_gate_up.in_fp8(), split_gate_up.in_fp8(), int4_gate_up}),
      entry(kExpertDown, Scope::Moe, {"E", "D", "I"},
            {fused_down, split_down, fused_down.in_fp8(), split_down.in_fp8(), int4_down}),
      // FP8 scales: fused [E, 1, 2I] / [E, D, 1], or per expert [rows, 1] each; all flatten to [E, N]
      // float32. INT4 scales (the layer's experts decide which): per expert [rows, K / G] bf16, to
      // [E, N, K / G] (text_weights.cpp adds the last dimension).
      entry("layers.{i}.moe.gate_up_scale", Scope::MoeQuant, {"E", "2I"},
            {src({X + "gate_up_proj_scale"}, {{"E", "1", "2I"}}),
             src({X + "{e}.gate_proj.weight_scale", X + "{e}.up_proj.weight_scale"}, {{"I", "1"}, {"I", "1"}})
                 .each_expert(),
             src({X + "{e}.gate_proj.weight_scale", X + "{e}.up_proj.weight_scale"}, {{"I", "DG"}, {"I", "DG"}})
                 .each_expert().in_int4()},
            true),
      entry("layers.{i}.moe.down_scale", Scope::MoeQuant, {"E", "D"},
            {src({X + "down_proj_scale"}, {{"E", "D", "1"}}),
             src({X + "{e}.down_proj.weight_scale"}, {{"D", "1"}}).each_expert(),
             src({X + "{e}.down_proj.weight_scale"}, {{"D", "IG"}}).each_expert().in_int4()},
            true),
      // INT4 shapes: packed [N, K/2] bytes from [N, K/8] words (text_weights.cpp halves the last
      // dimension), bf16 scales [N, K/G] as stored.
      entry(kSharedGateUp, Scope::Moe, {"2I", "D"}, {shared[0], shared[1]}),
      entry(kSharedDown, Scope::Moe, {"D", "I"}, {shared[2], shared[3]}),
      entry("layers.{i}.moe.shared_gate_up_scale", Scope::SharedQuant, {"2I", "DG"}, {shared[4]}),
      entry("layers.{i}.moe.shared_down_scale", Scope::SharedQuant, {"D", "IG"}, {shared[5]}),
      entry(kMlpGateUp, Scope::Dense, {"2Imlp", "D"}, {dense[0], dense[1]}),
      entry(kMlpDown, Scope::Dense, {"D", "Imlp"}, {dense[2], dense[3]}),
      entry("layers.{i}.mlp.gate_up_scale", Scope::DenseQuant, {"2Imlp", "DG"}, {dense[4]}),
      entry("layers.{i}.mlp.down_scale", Scope::DenseQuant, {"D", "ImlpG"}, {dense[5]}),
  };
}

}  // namespace

const std::vector<EntrySpec>& text_weight_table() {
  static const std::vector<EntrySpec> table = build();
  return table;
}

}  // namespace llama4::checkpoint
