// The Llama 4 vision tower: tiles of pixels -> rows of the text model's input embedding, one row
// per <|patch|> token (LLAMA4.md §3). Every tile (every local tile of every image, and each
// image's global thumbnail) is an independent batch row; nothing attends across tiles.
//   encode(pixel_values [tiles, C, S, S]) -> [tiles * tokens_per_tile, text_hidden_size]
// with S = image_size, tokens_per_tile = (S / patch_size * pixel_shuffle_ratio)^2.
//
// Weights are views with the engine names below (the Python loader maps the Hugging Face names,
// vision_weights.py; C++ applications may fill them directly). D = hidden_size, I =
// intermediate_size, N = (S / patch)^2 patches, P = patch_size, C = num_channels, f = 1 / ratio,
// Pi/Po = projector_input_dim / projector_output_dim, Dt = text_hidden_size:
//   patch_embedding [D, C P P]   class_embedding [D]   positional_embedding [N + 1, D]
//   layernorm_pre.{weight,bias} [D]   layernorm_post.{weight,bias} [D]
//   layers.{l}.input_layernorm.{weight,bias} [D]   layers.{l}.post_attention_layernorm.{weight,bias} [D]
//   layers.{l}.attn.qkv.weight [3D, D] (q rows, k rows, v rows)   layers.{l}.attn.qkv.bias [3D]
//   layers.{l}.attn.o.weight [D, D]   layers.{l}.attn.o.bias [D]
//   layers.{l}.mlp.fc1.weight [I, D]   .fc1.bias [I]   layers.{l}.mlp.fc2.weight [D, I]   .fc2.bias [D]
//   adapter.fc1.weight [Pi, D f f]   adapter.fc2.weight [Po, Po]   projector.weight [Dt, Po]
// All weights share the model dtype (float32 or bfloat16) and device (CPU for now).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "llama4/context.h"
#include "llama4/model.h"
#include "llama4/tensor.h"

namespace llama4 {

struct VisionConfig {
  int64_t hidden_size = 1408;
  int64_t num_hidden_layers = 34;
  int64_t num_attention_heads = 16;  // head_dim = hidden_size / heads (88 on the real model)
  int64_t intermediate_size = 5632;
  int64_t image_size = 336;  // tile side, pixels
  int64_t patch_size = 14;
  int64_t num_channels = 3;
  double pixel_shuffle_ratio = 0.5;  // 1 / ratio must be an integer
  int64_t projector_input_dim = 4096;
  int64_t projector_output_dim = 4096;
  double rope_theta = 10000.0;
  int64_t text_hidden_size = 5120;  // width of the multi-modal projector's output
  // Fields the engine does not read (transformers ignores them too), kept as config.json says.
  int64_t vision_output_dim = 4096;       // must equal projector_output_dim
  bool multi_modal_projector_bias = false;
  double norm_eps = 1e-5;                 // every LayerNorm uses 1e-5 regardless
  std::string hidden_act = "gelu";        // exact-erf GELU regardless
  IntOrList vision_feature_layer{{-1}, false};
  std::string vision_feature_select_strategy = "default";

  // Throws ValueError naming the first inconsistent field (the shape constraints that
  // transformers leaves implicit, LLAMA4.md §1.3).
  void validate() const;
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t num_patches() const { return patches_per_side() * patches_per_side(); }  // without CLS
  int64_t shuffle_factor() const;  // round(1 / pixel_shuffle_ratio)
  int64_t tokens_per_tile() const;
};

class VisionModel {
 public:
  // Checks every weight (presence, shape, dtype, device; ValueError/TypeError naming it) and
  // that no unknown name is given; precomputes the 2D RoPE tables.
  VisionModel(VisionConfig config, DType dtype, WeightMap weights);

  const VisionConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // pixel_values: [tiles, C, S, S], any float dtype (converted to the model dtype as the patches
  // are cut). Returns [tiles * tokens_per_tile, text_hidden_size] in the model dtype. Tiles are
  // processed max_tiles_per_pass at a time to bound the activation memory. Runs in ctx (on the
  // weights' device).
  Tensor encode(const Context& ctx, const TensorView& pixel_values) const;

  int64_t max_tiles_per_pass = 8;

 private:
  // The encoder on a group of tiles: [B, C, S, S] -> [B * tokens_per_tile, text_hidden_size].
  Tensor forward(const Context& ctx, const TensorView& pixels) const;
  void encoder_layer(const Context& ctx, int layer, const TensorView& h, int64_t B) const;
  Tensor linear_bias(const Context& ctx, const TensorView& x, const std::string& name) const;
  const TensorView& weight(const std::string& name) const;

  VisionConfig config_;
  DType dtype_;
  Device device_;
  WeightMap weights_;
  Tensor rope_cos_, rope_sin_;  // [N + 1, head_dim / 2] float32; the CLS row is the identity
};

// The weight names and shapes a config needs (used for validation and by loaders).
std::vector<std::pair<std::string, Shape>> expected_vision_weights(const VisionConfig& config);

// The vision 2D RoPE angles (fp32, as transformers computes them): for patch (row r, col c) of the
// grid, pair j < head_dim/4 turns by (c + 1) * f_j and pair head_dim/4 + j by (r + 1) * f_j, with
// f_j = 1 / theta^(2j / (head_dim/2)); the CLS token (last row) does not turn.
// Returns [N + 1, head_dim / 2] angles, row-major.
std::vector<float> vision_rope_angles(const VisionConfig& config);

}  // namespace llama4
