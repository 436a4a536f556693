// VisionConfig validation, the vision weight table (engine names and shapes) and the 2D RoPE
// angle table.
#include <cmath>

#include "llama4/error.h"
#include "llama4/vision.h"

namespace llama4 {

int64_t VisionConfig::shuffle_factor() const { return int64_t(std::llround(1.0 / pixel_shuffle_ratio)); }

int64_t VisionConfig::tokens_per_tile() const {
  const int64_t side = patches_per_side() / shuffle_factor();
  return side * side;
}

void VisionConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    LLAMA4_CHECK_ARG(v > 0, "vision config field '", name, "' must be positive, got ", v);
  };
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("image_size", image_size);
  positive("patch_size", patch_size);
  positive("num_channels", num_channels);
  positive("projector_input_dim", projector_input_dim);
  positive("projector_output_dim", projector_output_dim);
  positive("text_hidden_size", text_hidden_size);
  LLAMA4_CHECK_ARG(rope_theta > 0, "vision config field 'rope_theta' must be positive, got ", rope_theta);
  // 2D RoPE splits each head into x pairs and y pairs: head_dim must be a multiple of 4 (88 is).
  LLAMA4_CHECK_ARG(hidden_size % num_attention_heads == 0 && head_dim() % 4 == 0,
                   "vision config: hidden_size (", hidden_size, ") / num_attention_heads (",
                   num_attention_heads, ") must be a whole multiple of 4");
  LLAMA4_CHECK_ARG(image_size % patch_size == 0, "vision config field 'image_size' (", image_size,
                   ") must be a multiple of patch_size (", patch_size, ")");
  const int64_t f = shuffle_factor();
  LLAMA4_CHECK_ARG(pixel_shuffle_ratio > 0 && f >= 1 && std::fabs(1.0 / pixel_shuffle_ratio - double(f)) < 1e-9,
                   "vision config field 'pixel_shuffle_ratio' must be 1/n for an integer n, got ",
                   pixel_shuffle_ratio);
  LLAMA4_CHECK_ARG(patches_per_side() % f == 0, "vision config: the ", patches_per_side(), "x",
                   patches_per_side(), " patch grid is not divisible by 1/pixel_shuffle_ratio = ", f);
  LLAMA4_CHECK_ARG(intermediate_size == hidden_size * f * f, "vision config field 'intermediate_size' (",
                   intermediate_size, ") must equal hidden_size / pixel_shuffle_ratio^2 = ",
                   hidden_size * f * f, " (the adapter's input width)");
  LLAMA4_CHECK_ARG(projector_input_dim == projector_output_dim, "vision config field "
                   "'projector_input_dim' (", projector_input_dim, ") must equal projector_output_dim (",
                   projector_output_dim, ")");
}

std::vector<std::pair<std::string, Shape>> expected_vision_weights(const VisionConfig& c) {
  const int64_t D = c.hidden_size, I = c.intermediate_size, f = c.shuffle_factor();
  const int64_t P = c.patch_size, Po = c.projector_output_dim;
  std::vector<std::pair<std::string, Shape>> w = {
      {"patch_embedding", {D, c.num_channels * P * P}},
      {"class_embedding", {D}},
      {"positional_embedding", {c.num_patches() + 1, D}},
      {"layernorm_pre.weight", {D}}, {"layernorm_pre.bias", {D}},
      {"layernorm_post.weight", {D}}, {"layernorm_post.bias", {D}},
      {"adapter.fc1.weight", {c.projector_input_dim, D * f * f}},
      {"adapter.fc2.weight", {Po, Po}},
      {"projector.weight", {c.text_hidden_size, Po}}};
  for (int l = 0; l < int(c.num_hidden_layers); ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    for (const char* ln : {"input_layernorm", "post_attention_layernorm"}) {
      w.push_back({p + ln + ".weight", {D}});
      w.push_back({p + ln + ".bias", {D}});
    }
    w.push_back({p + "attn.qkv.weight", {3 * D, D}});
    w.push_back({p + "attn.qkv.bias", {3 * D}});
    w.push_back({p + "attn.o.weight", {D, D}});
    w.push_back({p + "attn.o.bias", {D}});
    w.push_back({p + "mlp.fc1.weight", {I, D}});
    w.push_back({p + "mlp.fc1.bias", {I}});
    w.push_back({p + "mlp.fc2.weight", {D, I}});
    w.push_back({p + "mlp.fc2.bias", {D}});
  }
  return w;
}

std::vector<float> vision_rope_angles(const VisionConfig& c) {
  const int64_t side = c.patches_per_side(), N = c.num_patches();
  const int64_t half = c.head_dim() / 2, quarter = half / 2;
  // transformers: 1 / theta^(arange(0, half, 2)[:half/2].float() / half), the text RoPE's formula
  // with head_dim := half (rope_inv_freq reproduces its fp32 arithmetic).
  const std::vector<float> freq = rope_inv_freq(int(half), c.rope_theta, RopeScaling{});
  std::vector<float> angles(size_t((N + 1) * half), 0.0f);  // the CLS row (index N) stays 0
  for (int64_t n = 0; n < N; ++n) {
    const float x = float(n % side + 1), y = float(n / side + 1);  // coordinates start at 1
    for (int64_t j = 0; j < quarter; ++j) {
      angles[size_t(n * half + j)] = x * freq[size_t(j)];            // fp32 product, as HF
      angles[size_t(n * half + quarter + j)] = y * freq[size_t(j)];
    }
  }
  return angles;
}

}  // namespace llama4
