// Resolves the text weight table against a checkpoint: picks each entry's source layout, expands
// layer / expert names, decides the experts' format per MoE layer (FP8 or INT4: stored, quantized at
// load, or neither) and the shared expert's / dense MLP's per layer (INT4 or not), and validates
// names, shapes and dtypes from the headers (and the INT4 modules' weight_shape values). Then the
// WeightStream reads the data.
#include <algorithm>
#include <map>
#include <set>

#include "llama4/error.h"
#include "model/checkpoint/json_util.h"
#include "model/checkpoint/text_weight_table.h"

namespace llama4::checkpoint {

namespace {

constexpr const char* kVisionPrefixes[] = {"vision_model.", "multi_modal_projector.", nullptr};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

bool is_vision(const std::string& name) {
  for (const char* const* p = kVisionPrefixes; *p; ++p)
    if (starts_with(name, *p)) return true;
  return false;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::string at_layer(const std::string& name, int layer) {
  return layer < 0 ? name : replace_all(name, "{i}", std::to_string(layer));
}

// Values of the dimension symbols the table's shapes are written in; G: the INT4 group size (0: none).
std::map<std::string, int64_t> dims(const TextConfig& c, int64_t G) {
  const int64_t d = c.head_dim, D = c.hidden_size, I = c.intermediate_size, Im = c.intermediate_size_mlp;
  return {{"1", 1}, {"V", c.vocab_size}, {"D", D}, {"E", c.num_local_experts}, {"I", I},
          {"2I", 2 * I}, {"Imlp", Im}, {"2Imlp", 2 * Im}, {"Hd", c.num_attention_heads * d},
          {"KVd", c.num_key_value_heads * d}, {"QKV", (c.num_attention_heads + 2 * c.num_key_value_heads) * d},
          {"D8", D / 8}, {"I8", I / 8}, {"Imlp8", Im / 8}, {"DG", G ? D / G : 0}, {"IG", G ? I / G : 0},
          {"ImlpG", G ? Im / G : 0}};
}

bool is_scale_entry(const EntrySpec& e) { return e.scope == Scope::MoeQuant; }
bool is_mlp_scale_entry(const EntrySpec& e) { return e.scope == Scope::SharedQuant || e.scope == Scope::DenseQuant; }
bool is_mlp_weight(const std::string& entry) {
  return entry == kSharedGateUp || entry == kSharedDown || entry == kMlpGateUp || entry == kMlpDown;
}

Stored stored_as(const SourceSpec& s, bool scale) {
  if (s.fp8) return Stored::Fp8;
  if (s.int4) return scale ? Stored::Int4Scale : Stored::Int4Words;
  return Stored::Float;
}

Shape resolve_shape(const std::vector<std::string>& symbols, const std::map<std::string, int64_t>& dim) {
  Shape s;
  for (const std::string& x : symbols) s.push_back(dim.at(x));
  return s;
}

struct Planner {
  const Checkpoint& ckpt;
  const TextConfig& c;
  const std::optional<Fp8Plan>& fp8;
  DType dtype;
  std::string root;
  std::map<std::string, int64_t> dim;

  std::vector<std::string> expand(const SourceSpec& s, int layer) const {
    std::vector<std::string> out;
    if (!s.per_expert) {
      for (const std::string& n : s.names) out.push_back(root + at_layer(n, layer));
      return out;
    }
    for (int64_t e = 0; e < c.num_local_experts; ++e)
      for (const std::string& n : s.names) out.push_back(root + replace_all(at_layer(n, layer), "{e}", std::to_string(e)));
    return out;
  }

  int64_t int4_group() const { return fp8 ? fp8->int4_group_size : 0; }

  bool accepts(const SourceSpec& s, const std::string& dtype_name) const {
    if (s.fp8) return dtype_name == "F8_E4M3";
    if (s.int4) return true;  // its own names (weight_packed, or a scale of an INT4 layer); dtype checked later
    return std::find(std::begin(kFloatDTypes), std::end(kFloatDTypes), dtype_name) != std::end(kFloatDTypes);
  }

  // The first source whose first tensor exists (with an accepted dtype, if any does); every one of
  // its tensors must then exist. Returns the chosen source. Scales (Scope::MoeQuant) come from the
  // sources of the layer's expert format (`int4_scales`).
  const SourceSpec& resolve(const EntrySpec& e, int layer, PlannedTensor& out, bool int4_scales = false) const {
    std::vector<const SourceSpec*> candidates, present, fits;
    for (const SourceSpec& s : e.sources)
      if ((!s.tied_only || c.tie_word_embeddings) && (!is_scale_entry(e) || s.int4 == int4_scales))
        candidates.push_back(&s);
    for (const SourceSpec* s : candidates) {
      const std::string first = expand(*s, layer)[0];
      if (!ckpt.contains(first)) continue;
      present.push_back(s);
      if (accepts(*s, ckpt.info(first).dtype)) fits.push_back(s);
    }
    const std::string name = at_layer(e.name, layer);
    if (present.empty()) {
      std::string wanted;
      for (const SourceSpec* s : candidates) wanted += (wanted.empty() ? "'" : " or '") + expand(*s, layer)[0] + "'";
      throw CheckpointError(ckpt.path() + ": missing tensor " + wanted + " (needed for '" + name + "')");
    }
    const SourceSpec& s = *(fits.empty() ? present : fits)[0];
    out.name = name;
    out.shape = resolve_shape(e.shape, dim);
    out.hf_names = expand(s, layer);
    out.layout = s.layout;
    out.dtype = s.fp8 ? DType::F8E4M3 : e.float32 ? DType::F32 : dtype;
    if (s.int4 && is_scale_entry(e)) {  // [E, N] -> [E, N, K / G]: K is D for gate_up, I for down
      out.shape.push_back((e.name == "layers.{i}.moe.gate_up_scale" ? c.hidden_size : c.intermediate_size) /
                          int4_group());
      out.dtype = DType::BF16;
    } else if (is_mlp_scale_entry(e)) {  // [N, K / G] as stored
      out.dtype = DType::BF16;
    } else if (s.int4) {  // [.., N, K] -> two int4 per byte
      out.shape.back() /= 2;
      out.dtype = DType::U8;
      out.int4_words = true;
    }
    std::vector<std::string> missing;
    for (const std::string& n : out.hf_names)
      if (!ckpt.contains(n)) missing.push_back(n);
    if (!missing.empty())
      throw CheckpointError(ckpt.path() + ": missing tensor '" + missing[0] + "' (needed for '" + name + "'; " +
                            std::to_string(missing.size()) + " of its tensors missing)");
    return s;
  }

  void check_shapes(const PlannedTensor& p, const SourceSpec& s) const {
    std::vector<Shape> shapes;
    for (const auto& sym : s.shapes) shapes.push_back(resolve_shape(sym, dim));
    const Stored stored = stored_as(s, p.name.size() > 6 && p.name.compare(p.name.size() - 6, 6, "_scale") == 0);
    for (size_t k = 0; k < p.hf_names.size(); ++k)
      check_tensor(ckpt.info(p.hf_names[k]), shapes[k % shapes.size()], stored);
  }

  // A pack-quantized module's weight_shape: I64 [2] holding [out, in] (its unpacked nn.Linear
  // shape, which the packed shape only bounds). Returns its name.
  std::string check_weight_shape(const std::string& packed, const Shape& want) const {
    const std::string name = packed.substr(0, packed.size() - std::string("weight_packed").size()) + "weight_shape";
    if (!ckpt.contains(name))
      throw CheckpointError(ckpt.path() + ": missing tensor '" + name + "' (the shape of '" + packed + "')");
    const TensorInfo& info = ckpt.info(name);
    if (info.dtype != "I64" || info.shape != Shape{2})
      throw CheckpointError(info.file + ": tensor '" + name + "' must be I64 [2], got " + info.dtype + " " +
                            shape_repr(info.shape));
    const Tensor t = ckpt.get(name);
    const int64_t* v = static_cast<const int64_t*>(t.data());
    if (v[0] != want[0] || v[1] != want[1])
      throw CheckpointError(info.file + ": tensor '" + name + "' says [" + std::to_string(v[0]) + ", " +
                            std::to_string(v[1]) + "], expected " + shape_repr(want) + " from config.json");
    return name;
  }

  // A stored INT4 checkpoint's ignore list must agree with its shared expert's (MoE layer) or
  // dense MLP's tensors: its gate, up and down projections are all INT4 exactly when the list
  // leaves them quantized. `first`: the module's gate tensor as the checkpoint holds it.
  void check_mlp_ignore_list(int layer, bool stored_int4, const std::string& first) const {
    const std::string ff = root + "model.layers." + std::to_string(layer) + ".feed_forward." +
                           (c.is_moe_layer(layer) ? "shared_expert." : "");
    const char* what = c.is_moe_layer(layer) ? "shared expert" : "MLP";
    size_t ignored = 0;
    std::string first_ignored, first_kept;
    for (const char* w : {"gate", "up", "down"}) {
      const std::string m = ff + w + "_proj";
      if (fp8->ignores(m, root)) {
        if (ignored++ == 0) first_ignored = m;
      } else if (first_kept.empty()) {
        first_kept = m;
      }
    }
    const TensorInfo& info = ckpt.info(first);
    const std::string L = std::to_string(layer);
    if (ignored && ignored != 3)
      throw CheckpointError(ckpt.path() + ": quantization_config ignores '" + first_ignored + "' but not '" +
                            first_kept + "'; the engine runs a " + what + "'s projections all in INT4 or all unquantized");
    if ((ignored == 3) == stored_int4)
      throw CheckpointError(info.file + ": tensor '" + first + "' is " + info.dtype + ", but config.json's "
                            "quantization_config " + (stored_int4 ? "leaves" : "quantizes") + " layer " + L + "'s " +
                            what + (stored_int4 ? " unquantized (ignore list)" : " (not in its ignore list)"));
  }

  // A stored-FP8 checkpoint's quantization_config must agree with its tensors: a MoE layer's
  // experts are FP8 exactly when its ignore list leaves them quantized.
  void check_ignore_list(int layer, bool per_expert, bool stored_fp8, const std::string& first) const {
    const std::string ff = root + "model.layers." + std::to_string(layer) + ".feed_forward.experts";
    std::vector<std::string> modules;
    if (per_expert) {
      for (int64_t e = 0; e < c.num_local_experts; ++e)
        for (const char* w : {"gate", "up", "down"}) modules.push_back(ff + "." + std::to_string(e) + "." + w + "_proj");
    } else {
      modules.push_back(ff);
    }
    size_t ignored = 0;
    std::string first_ignored;
    for (const std::string& m : modules) {
      if (!fp8->ignores(m, root)) continue;
      if (ignored++ == 0) first_ignored = m;
    }
    const std::string L = std::to_string(layer);
    if (ignored && ignored != modules.size())
      throw CheckpointError(ckpt.path() + ": quantization_config ignores '" + first_ignored + "' but not every expert of layer " +
                            L + "; the engine runs a layer's experts all in FP8 or all unquantized");
    const bool all_ignored = ignored == modules.size();
    if (all_ignored == stored_fp8) {
      const std::string said = all_ignored ? "leaves them unquantized (ignore list)" : "quantizes them";
      throw CheckpointError(ckpt.path() + ": quantization_config " + said + ", but layer " + L + "'s expert tensor '" +
                            first + "' is " + ckpt.info(first).dtype);
    }
  }
};

// "language_model." (Llama4ForConditionalGeneration) or "" (Llama4ForCausalLM).
std::string text_root(const Checkpoint& ckpt) {
  bool cond = false, causal = false;
  for (const std::string& n : ckpt.names()) {
    cond = cond || starts_with(n, "language_model.");
    causal = causal || starts_with(n, "model.") || n == "lm_head.weight";
  }
  if (cond && causal)
    throw CheckpointError(ckpt.path() + ": has both 'language_model.*' and 'model.*' tensors; cannot tell "
                                        "ConditionalGeneration from CausalLM");
  if (!cond && !causal)
    throw CheckpointError(ckpt.path() + ": no text-model tensors (expected 'language_model.model.*' or 'model.*')");
  return cond ? "language_model." : "";
}

void check_unexpected(const Checkpoint& ckpt, const std::vector<PlannedTensor>& plan,
                      const std::vector<std::string>& also_used) {
  std::set<std::string> used(also_used.begin(), also_used.end());
  for (const PlannedTensor& p : plan) used.insert(p.hf_names.begin(), p.hf_names.end());
  json unexpected = json::array();
  for (const std::string& n : ckpt.names())
    if (!used.count(n) && !is_vision(n)) unexpected.push_back(n);
  if (unexpected.empty()) return;
  json first5 = json::array();
  for (size_t k = 0; k < unexpected.size() && k < 5; ++k) first5.push_back(unexpected[k]);
  const std::string more =
      unexpected.size() > 5 ? " (and " + std::to_string(unexpected.size() - 5) + " more)" : "";
  throw CheckpointError(ckpt.path() + ": unexpected tensor '" + unexpected[0].get<std::string>() +
                        "' for this config (unexpected: " + py_repr(first5) + more +
                        "); wrong config.json, or a layer kind (MoE/dense) that disagrees with moe_layers?");
}

}  // namespace

// Every engine tensor of the text decoder, resolved and validated (no data read).
std::vector<PlannedTensor> plan_text_weights(const Checkpoint& ckpt, const TextConfig& c, DType dtype,
                                             const std::optional<Fp8Plan>& fp8) {
  const int64_t G = fp8 ? fp8->int4_group_size : 0;
  Planner pl{ckpt, c, fp8, dtype, text_root(ckpt), dims(c, G)};
  std::vector<PlannedTensor> plan;
  std::vector<const SourceSpec*> sources;
  std::vector<std::string> shape_tensors;  // INT4 modules' weight_shape (checked, not loaded)
  struct StoredExperts {
    std::string first;  // the first expert tensor
    bool per_expert, int4;
  };
  std::map<int, StoredExperts> stored;  // MoE layers whose experts the checkpoint stores quantized
  std::set<int> stored_mlp;             // layers whose shared expert / MLP the checkpoint stores INT4
  std::map<int, std::string> mlp_first;  // each layer's shared expert / MLP gate tensor
  const auto kind = [](bool int4) { return int4 ? "INT4" : "FP8"; };
  const auto add = [&](const EntrySpec& e, int layer) {
    if (e.scope == Scope::MoeQuant && !stored.count(layer)) return;
    if (is_mlp_scale_entry(e) && !stored_mlp.count(layer)) return;
    PlannedTensor p;
    const SourceSpec& s = pl.resolve(e, layer, p, e.scope == Scope::MoeQuant && stored.at(layer).int4);
    const bool quantized = s.fp8 || s.int4;
    const bool mlp = is_mlp_weight(e.name);
    if (quantized && (e.name == kExpertGateUp || e.name == kExpertDown || mlp)) {
      const std::string& first = p.hf_names[0];
      if (s.int4 && G == 0)
        throw CheckpointError(ckpt.info(first).file + ": tensor '" + first + "' is pack-quantized INT4, but config.json "
                              "has no INT4 quantization_config (compressed-tensors, num_bits 4, strategy 'group')");
      if (s.fp8 && G > 0)
        throw CheckpointError(ckpt.info(first).file + ": tensor '" + first + "' is F8_E4M3, but config.json's "
                              "quantization_config says INT4 (pack-quantized)");
      if (s.int4) {  // [E, N, K/2] or [N, K/2] from `per` modules of N / per rows each
        const int64_t per = int64_t(s.names.size()), N = p.shape[p.shape.size() - 2] / per, K = p.shape.back() * 2;
        for (const std::string& n : p.hf_names) shape_tensors.push_back(pl.check_weight_shape(n, {N, K}));
      }
    }
    if (mlp && (e.name == kSharedGateUp || e.name == kMlpGateUp)) {
      mlp_first[layer] = p.hf_names[0];
      if (s.int4) stored_mlp.insert(layer);
    } else if (mlp && s.int4 != (stored_mlp.count(layer) != 0)) {
      throw CheckpointError(ckpt.path() + ": layer " + std::to_string(layer) + " mixes INT4 and unquantized " +
                            (c.is_moe_layer(layer) ? "shared-expert" : "MLP") + " weights ('" + p.hf_names[0] +
                            "' is " + ckpt.info(p.hf_names[0]).dtype + ", '" + mlp_first.at(layer) + "' is " +
                            ckpt.info(mlp_first.at(layer)).dtype + "); the engine runs its projections in one format");
    }
    // quantization="int4" at load: the shared expert and the dense MLP too, with the experts' rule.
    if (mlp && fp8 && !fp8->stored && G > 0 && !s.int4 && !fp8->skip_layers.count(layer)) {
      p.quantize = Quantize::Int4;
      p.int4_group = G;
    }
    if (e.name == kExpertGateUp && quantized) {
      stored[layer] = {p.hf_names[0], s.per_expert, s.int4};
    } else if (e.name == kExpertDown && (quantized != (stored.count(layer) != 0) ||
                                         (quantized && s.int4 != stored.at(layer).int4))) {
      const bool gate_up_int4 = stored.count(layer) && stored.at(layer).int4;
      throw CheckpointError(ckpt.path() + ": layer " + std::to_string(layer) + " mixes " +
                            (quantized && stored.count(layer) ? "FP8 and INT4"
                                                              : std::string(kind(s.int4 || gate_up_int4)) + " and unquantized") +
                            " expert weights ('" + p.hf_names[0] + "' is " + ckpt.info(p.hf_names[0]).dtype +
                            "); the engine runs a layer's experts all in one format");
    }
    if ((e.name == kExpertGateUp || e.name == kExpertDown) && fp8 && !fp8->stored && !quantized &&
        !fp8->skip_layers.count(layer)) {
      p.quantize = G > 0 ? Quantize::Int4 : Quantize::Fp8;
      p.int4_group = G;
    }
    plan.push_back(std::move(p));
    sources.push_back(&s);
  };
  const auto& table = text_weight_table();
  for (const EntrySpec& e : table)
    if (e.scope == Scope::Model) add(e, -1);
  for (int i = 0; i < int(c.num_hidden_layers); ++i) {
    const bool moe = c.is_moe_layer(i);
    for (const EntrySpec& e : table) {
      const bool in_layer = e.scope == Scope::Layer ||
                            (moe && (e.scope == Scope::Moe || e.scope == Scope::MoeQuant || e.scope == Scope::SharedQuant)) ||
                            (!moe && (e.scope == Scope::Dense || e.scope == Scope::DenseQuant));
      if (in_layer) add(e, i);
    }
  }
  if (fp8 && fp8->stored) {
    for (size_t k = 0; k < plan.size(); ++k) {
      const std::string& n = plan[k].name;
      if (n.size() < 12 || n.compare(n.size() - 12, 12, ".moe.gate_up") != 0) continue;
      const int layer = std::stoi(n.substr(7));
      pl.check_ignore_list(layer, sources[k]->per_expert, stored.count(layer) != 0, plan[k].hf_names[0]);
    }
    if (G > 0)
      for (const auto& [layer, first] : mlp_first) pl.check_mlp_ignore_list(layer, stored_mlp.count(layer) != 0, first);
  }
  for (size_t k = 0; k < plan.size(); ++k) pl.check_shapes(plan[k], *sources[k]);
  check_unexpected(ckpt, plan, shape_tensors);
  return plan;
}

}  // namespace llama4::checkpoint

namespace llama4 {

WeightStream text_weight_stream(std::shared_ptr<const Checkpoint> checkpoint, const TextConfig& config, DType dtype,
                                const std::optional<Fp8Plan>& fp8, LoadProgress progress, const TextShard& shard) {
  LLAMA4_CHECK_ARG(dtype == DType::F32 || dtype == DType::BF16, "dtype must be float32 or bfloat16, got ",
                   dtype_name(dtype));
  auto plan = checkpoint::plan_text_weights(*checkpoint, config, dtype, fp8);
  checkpoint::cut_to_shard(plan, config, shard);
  return checkpoint::make_weight_stream(std::move(checkpoint), std::move(plan), std::move(progress));
}

WeightSet load_text_weights(std::shared_ptr<const Checkpoint> checkpoint, const TextConfig& config, DType dtype,
                            const std::optional<Fp8Plan>& fp8, LoadProgress progress) {
  return text_weight_stream(std::move(checkpoint), config, dtype, fp8, std::move(progress)).collect();
}

}  // namespace llama4
