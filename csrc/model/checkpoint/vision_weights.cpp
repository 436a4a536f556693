// The vision tower's weight table (HF `vision_model.*` / `multi_modal_projector.*` -> the engine
// names of llama4/vision.h, LLAMA4.md §5.1) and its resolution against a checkpoint. Several HF
// tensors stack along dim 0 (q, k, v -> the fused qkv weight and bias).
#include <map>
#include <set>

#include "llama4/error.h"
#include "model/checkpoint/json_util.h"
#include "model/checkpoint/weight_plan.h"

namespace llama4::checkpoint {

namespace {

const std::string V = "vision_model.", VL = V + "model.layers.{l}.";

// An engine tensor: name ({l} = layer), per layer or once, the HF names it stacks (dim 0, in
// order) and the shape of each in the symbols of vision_dims().
struct VisionEntry {
  std::string name;
  bool per_layer;
  std::vector<std::string> hf_names;
  std::vector<std::string> shape;  // of each HF tensor
};

std::vector<VisionEntry> build() {
  std::vector<VisionEntry> t = {
      {"patch_embedding", false, {V + "patch_embedding.linear.weight"}, {"D", "CPP"}},
      {"class_embedding", false, {V + "class_embedding"}, {"D"}},
      {"positional_embedding", false, {V + "positional_embedding_vlm"}, {"N1", "D"}}};
  for (const char* w : {"pre", "post"})
    for (const char* p : {"weight", "bias"})
      t.push_back({std::string("layernorm_") + w + "." + p, false, {V + "layernorm_" + w + "." + p}, {"D"}});
  t.push_back({"adapter.fc1.weight", false, {V + "vision_adapter.mlp.fc1.weight"}, {"Pi", "Dff"}});
  t.push_back({"adapter.fc2.weight", false, {V + "vision_adapter.mlp.fc2.weight"}, {"Po", "Po"}});
  t.push_back({"projector.weight", false, {"multi_modal_projector.linear_1.weight"}, {"Dt", "Vout"}});
  for (const char* n : {"input_layernorm", "post_attention_layernorm"})
    for (const char* p : {"weight", "bias"})
      t.push_back({std::string("layers.{l}.") + n + "." + p, true, {VL + n + "." + p}, {"D"}});
  for (const char* p : {"weight", "bias"}) {
    std::vector<std::string> qkv;
    for (const char* x : {"q", "k", "v"}) qkv.push_back(VL + "self_attn." + x + "_proj." + p);
    t.push_back({std::string("layers.{l}.attn.qkv.") + p, true, qkv,
                 p == std::string("weight") ? std::vector<std::string>{"D", "D"} : std::vector<std::string>{"D"}});
  }
  t.push_back({"layers.{l}.attn.o.weight", true, {VL + "self_attn.o_proj.weight"}, {"D", "D"}});
  t.push_back({"layers.{l}.attn.o.bias", true, {VL + "self_attn.o_proj.bias"}, {"D"}});
  t.push_back({"layers.{l}.mlp.fc1.weight", true, {VL + "mlp.fc1.weight"}, {"I", "D"}});
  t.push_back({"layers.{l}.mlp.fc1.bias", true, {VL + "mlp.fc1.bias"}, {"I"}});
  t.push_back({"layers.{l}.mlp.fc2.weight", true, {VL + "mlp.fc2.weight"}, {"D", "I"}});
  t.push_back({"layers.{l}.mlp.fc2.bias", true, {VL + "mlp.fc2.bias"}, {"D"}});
  return t;
}

const std::vector<VisionEntry>& vision_table() {
  static const std::vector<VisionEntry> t = build();
  return t;
}

std::map<std::string, int64_t> vision_dims(const VisionConfig& c) {
  const int64_t f = c.shuffle_factor();
  return {{"D", c.hidden_size}, {"I", c.intermediate_size}, {"CPP", c.num_channels * c.patch_size * c.patch_size},
          {"N1", c.num_patches() + 1}, {"Dff", c.hidden_size * f * f}, {"Pi", c.projector_input_dim},
          {"Po", c.projector_output_dim}, {"Vout", c.vision_output_dim}, {"Dt", c.text_hidden_size}};
}

bool is_vision_name(const std::string& n) {
  return n.rfind("vision_model.", 0) == 0 || n.rfind("multi_modal_projector.", 0) == 0;
}

std::string at_layer(const std::string& s, int layer) {
  if (layer < 0) return s;
  const size_t at = s.find("{l}");
  return at == std::string::npos ? s : s.substr(0, at) + std::to_string(layer) + s.substr(at + 3);
}

std::vector<PlannedTensor> plan_vision_weights(const Checkpoint& ckpt, const VisionConfig& c, DType dtype) {
  const auto dims = vision_dims(c);
  std::vector<PlannedTensor> plan;
  std::set<std::string> used;
  for (const VisionEntry& e : vision_table()) {
    for (int layer = e.per_layer ? 0 : -1; layer < (e.per_layer ? int(c.num_hidden_layers) : 0); ++layer) {
      PlannedTensor p;
      p.name = at_layer(e.name, layer);
      p.dtype = dtype;
      Shape shape;
      for (const std::string& x : e.shape) shape.push_back(dims.at(x));
      for (const std::string& hf : e.hf_names) {
        const std::string n = at_layer(hf, layer);
        if (!ckpt.contains(n))
          throw CheckpointError(ckpt.path() + ": missing vision tensor '" + n + "' (needed for '" + p.name + "')");
        check_tensor(ckpt.info(n), shape, Stored::Float);
        p.hf_names.push_back(n);
        used.insert(n);
      }
      p.shape = shape;
      p.shape[0] *= int64_t(e.hf_names.size());  // stacked along dim 0
      plan.push_back(std::move(p));
    }
  }
  std::vector<std::string> unexpected;
  for (const std::string& n : ckpt.names())
    if (is_vision_name(n) && !used.count(n)) unexpected.push_back(n);
  if (!unexpected.empty())
    throw CheckpointError(ckpt.path() + ": unexpected vision tensor '" + unexpected[0] + "' for this config (" +
                          std::to_string(unexpected.size()) + " unexpected); wrong vision_config?");
  return plan;
}

}  // namespace

}  // namespace llama4::checkpoint

namespace llama4 {

bool has_vision_weights(const Checkpoint& checkpoint) {
  for (const std::string& n : checkpoint.names())
    if (checkpoint::is_vision_name(n)) return true;
  return false;
}

WeightStream vision_weight_stream(std::shared_ptr<const Checkpoint> checkpoint, const VisionConfig& config, DType dtype,
                                  LoadProgress progress) {
  LLAMA4_CHECK_ARG(dtype == DType::F32 || dtype == DType::BF16, "dtype must be float32 or bfloat16, got ",
                   dtype_name(dtype));
  auto plan = checkpoint::plan_vision_weights(*checkpoint, config, dtype);
  return checkpoint::make_weight_stream(std::move(checkpoint), std::move(plan), std::move(progress));
}

WeightSet load_vision_weights(std::shared_ptr<const Checkpoint> checkpoint, const VisionConfig& config, DType dtype,
                              LoadProgress progress) {
  return vision_weight_stream(std::move(checkpoint), config, dtype, std::move(progress)).collect();
}

}  // namespace llama4
