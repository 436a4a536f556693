// The Llama 4 vision tower forward pass, composed of ops (LLAMA4.md §3, steps 1-10), per group of
// B tiles with N = (S/P)^2 patches and D = hidden_size:
//   1  patches = patchify(pixels) [B, N, C P P] -> linear -> [B, N, D]
//   2  CLS appended LAST -> h [B, N+1, D]            3  h += positional_embedding
//   4  layernorm_pre                                 5  layers: h += o(attn(LN1 h)); h += fc2(gelu(fc1(LN2 h)))
//   6  (in attention) 2D RoPE on q and k from precomputed cos/sin tables; bidirectional, per tile
//   7  layernorm_post, drop CLS                     8  pixel_shuffle -> [B, N/f^2, D f^2]
//   9  adapter: gelu(fc2(gelu(fc1(x)))), no bias    10 projector -> [B * N/f^2, text_hidden_size]
// Linear layers with a bias write their product in fp32 and add the bias with one rounding, as
// nn.Linear does (identical in fp32, and what bf16 parity needs).
// 2D RoPE goes through ops::rope_table rather than ops::rope: the text op's angle is
// position * inv_freq[j] with one position per token, but here the first half of the pairs turns
// with the column and the second half with the row (and CLS not at all). A per-token angle table
// expresses that exactly, and its cos/sin are computed once per model instead of per layer and tile.
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "llama4/error.h"
#include "llama4/ops.h"
#include "llama4/vision.h"

namespace llama4 {

namespace {
std::string layer_name(int layer, const char* what) {
  return "layers." + std::to_string(layer) + "." + what;
}

// Columns [first, first + count) of a [T, W] tensor, viewed as [B, T / B, count / d, d].
TensorView heads_view(const TensorView& t, int64_t B, int64_t first, int64_t count, int64_t d) {
  const int64_t T = t.size(0), W = t.stride(0), n = T / B;
  void* data = static_cast<char*>(t.data) + first * int64_t(element_size(t.dtype));
  return TensorView(data, t.dtype, {B, n, count / d, d}, {n * W, W, d, 1}, t.device);
}
}  // namespace

VisionModel::VisionModel(VisionConfig config, DType dtype, WeightMap weights)
    : config_(std::move(config)), dtype_(dtype), weights_(std::move(weights)) {
  config_.validate();
  LLAMA4_CHECK_TYPE(dtype == DType::F32 || dtype == DType::BF16,
                    "vision model dtype must be float32 or bfloat16, got ", dtype_name(dtype));
  std::unordered_set<std::string> known;
  bool first = true;
  for (const auto& [name, shape] : expected_vision_weights(config_)) {
    known.insert(name);
    auto it = weights_.find(name);
    LLAMA4_CHECK_ARG(it != weights_.end(), "missing vision weight '", name, "'");
    const TensorView& t = it->second;
    LLAMA4_CHECK_TYPE(t.dtype == dtype, "vision weight '", name, "' must have dtype ",
                      dtype_name(dtype), ", got ", dtype_name(t.dtype));
    const TensorView want(nullptr, dtype, shape);
    LLAMA4_CHECK_ARG(t.sizes() == want.sizes(), "vision weight '", name, "' must have shape ",
                     want.shape_str(), ", got ", t.shape_str());
    LLAMA4_CHECK_ARG(t.is_contiguous(), "vision weight '", name, "' must be contiguous");
    if (first) device_ = t.device;
    first = false;
    LLAMA4_CHECK_TYPE(t.device == device_, "vision weight '", name, "' is on ", t.device.str(),
                      " but the others are on ", device_.str());
  }
  for (const auto& [name, view] : weights_)
    LLAMA4_CHECK_ARG(known.count(name), "unexpected vision weight '", name, "' for this config");

  // cos/sin of the 2D RoPE angles, once: every layer and tile reuses them.
  const std::vector<float> angles = vision_rope_angles(config_);
  const int64_t rows = config_.num_patches() + 1, half = config_.head_dim() / 2;
  Tensor c = Tensor::empty({rows, half}, DType::F32), s = Tensor::empty({rows, half}, DType::F32);
  for (size_t i = 0; i < angles.size(); ++i) {
    c.ptr<float>()[i] = std::cos(angles[i]);
    s.ptr<float>()[i] = std::sin(angles[i]);
  }
  const Context ctx = Context::on(device_);
  rope_cos_ = ops::to_device(ctx, c, device_);
  rope_sin_ = ops::to_device(ctx, s, device_);
  ctx.synchronize();  // the tables are used from other streams later
}

const TensorView& VisionModel::weight(const std::string& name) const { return weights_.at(name); }

Tensor VisionModel::encode(const Context& ctx, const TensorView& pixels) const {
  const VisionConfig& c = config_;
  LLAMA4_CHECK_ARG(pixels.ndim == 4 && pixels.size(1) == c.num_channels &&
                       pixels.size(2) == c.image_size && pixels.size(3) == c.image_size,
                   "pixel_values must have shape [tiles, ", c.num_channels, ", ", c.image_size, ", ",
                   c.image_size, "], got ", pixels.shape_str());
  LLAMA4_CHECK_TYPE(pixels.device == device_, "pixel_values are on ", pixels.device.str(),
                    " but the vision weights are on ", device_.str());
  LLAMA4_CHECK_TYPE(ctx.device() == device_, "VisionModel.encode: the context is on ", ctx.device().str(),
                    " but the vision weights are on ", device_.str());
  LLAMA4_CHECK_ARG(max_tiles_per_pass > 0, "max_tiles_per_pass must be positive, got ", max_tiles_per_pass);
  const int64_t tiles = pixels.size(0), per_tile = c.tokens_per_tile();
  Tensor out = ctx.empty({tiles * per_tile, c.text_hidden_size}, dtype_);
  for (int64_t t0 = 0; t0 < tiles; t0 += max_tiles_per_pass) {
    const int64_t t1 = std::min(tiles, t0 + max_tiles_per_pass);
    const Tensor part = forward(ctx, pixels.slice0(t0, t1));
    ops::copy(ctx, out.view().slice0(t0 * per_tile, t1 * per_tile), part);
  }
  return out;
}

// y = x W^T + b with one rounding (fp32 product when the model is bf16).
Tensor VisionModel::linear_bias(const Context& ctx, const TensorView& x, const std::string& name) const {
  const TensorView& w = weight(name + ".weight");
  Tensor y = ctx.empty({x.size(0), w.size(0)}, dtype_);
  if (dtype_ == DType::F32) {
    ops::linear(ctx, y, x, w);
    ops::add_bias(ctx, y, y, weight(name + ".bias"));
  } else {
    Tensor acc = ctx.empty({x.size(0), w.size(0)}, DType::F32);
    ops::linear(ctx, acc, x, w);
    ops::add_bias(ctx, y, acc, weight(name + ".bias"));
  }
  return y;
}

Tensor VisionModel::forward(const Context& ctx, const TensorView& pixels) const {
  const VisionConfig& c = config_;
  const int64_t B = pixels.size(0), N = c.num_patches(), D = c.hidden_size, P = c.patch_size;
  const int64_t T = B * (N + 1);
  constexpr float kEps = 1e-5f;  // nn.LayerNorm's default; HF ignores config.norm_eps

  // 1-3: patch embedding into rows [b (N+1), b (N+1) + N), CLS last, + positional embedding.
  Tensor patches = ctx.empty({B, N, c.num_channels * P * P}, dtype_);
  ops::patchify(ctx, patches, pixels, P);
  Tensor h = ctx.empty({T, D}, dtype_);
  for (int64_t b = 0; b < B; ++b) {
    const TensorView tile = h.view().slice0(b * (N + 1), (b + 1) * (N + 1));
    ops::linear(ctx, tile.slice0(0, N), patches.view().select0(b), weight("patch_embedding"));
    ops::copy(ctx, tile.slice0(N, N + 1), weight("class_embedding").reshape({1, D}));
    ops::add(ctx, tile, tile, weight("positional_embedding"));
  }
  // 4-5
  ops::layer_norm(ctx, h, h, weight("layernorm_pre.weight"), weight("layernorm_pre.bias"), kEps);
  for (int l = 0; l < int(c.num_hidden_layers); ++l) encoder_layer(ctx, l, h, B);
  // 7: layernorm_post; the CLS row is dropped by the shuffle's strided view.
  ops::layer_norm(ctx, h, h, weight("layernorm_post.weight"), weight("layernorm_post.bias"), kEps);
  const TensorView tokens(h.data(), dtype_, {B, N, D}, {(N + 1) * D, D, 1}, device_);
  // 8
  const int64_t f = c.shuffle_factor(), n_out = N / (f * f);
  Tensor shuffled = ctx.empty({B, n_out, D * f * f}, dtype_);
  ops::pixel_shuffle(ctx, shuffled, tokens, f);
  // 9: adapter MLP, GELU after both layers.
  const TensorView flat = shuffled.view().reshape({B * n_out, D * f * f});
  Tensor a1 = ctx.empty({B * n_out, c.projector_input_dim}, dtype_);
  ops::linear(ctx, a1, flat, weight("adapter.fc1.weight"));
  ops::gelu(ctx, a1, a1);
  Tensor a2 = ctx.empty({B * n_out, c.projector_output_dim}, dtype_);
  ops::linear(ctx, a2, a1, weight("adapter.fc2.weight"));
  ops::gelu(ctx, a2, a2);
  // 10
  Tensor out = ctx.empty({B * n_out, c.text_hidden_size}, dtype_);
  ops::linear(ctx, out, a2, weight("projector.weight"));
  return out;
}

// One pre-norm encoder layer on h [B (N+1), D], in place.
void VisionModel::encoder_layer(const Context& ctx, int l, const TensorView& h, int64_t B) const {
  const VisionConfig& c = config_;
  const int64_t T = h.size(0), D = c.hidden_size, d = c.head_dim(), H = c.num_attention_heads;
  constexpr float kEps = 1e-5f;
  Tensor x = ctx.empty({T, D}, dtype_);
  ops::layer_norm(ctx, x, h, weight(layer_name(l, "input_layernorm.weight")),
                  weight(layer_name(l, "input_layernorm.bias")), kEps);
  const Tensor qkv = linear_bias(ctx, x, layer_name(l, "attn.qkv"));
  const TensorView q = heads_view(qkv, B, 0, D, d), k = heads_view(qkv, B, D, D, d),
                   v = heads_view(qkv, B, 2 * D, D, d);
  Tensor q_rot = ctx.empty(q.sizes(), dtype_), k_rot = ctx.empty(k.sizes(), dtype_);
  ops::rope_table(ctx, q_rot, q, rope_cos_, rope_sin_);
  ops::rope_table(ctx, k_rot, k, rope_cos_, rope_sin_);
  Tensor attn = ctx.empty(q.sizes(), dtype_);
  ops::attention_dense(ctx, attn, q_rot, k_rot, v, float(1.0 / std::sqrt(double(d))));  // sdpa's default
  const Tensor o = linear_bias(ctx, attn.view().reshape({T, H * d}), layer_name(l, "attn.o"));
  ops::add(ctx, h, h, o);

  ops::layer_norm(ctx, x, h, weight(layer_name(l, "post_attention_layernorm.weight")),
                  weight(layer_name(l, "post_attention_layernorm.bias")), kEps);
  Tensor f1 = linear_bias(ctx, x, layer_name(l, "mlp.fc1"));
  ops::gelu(ctx, f1, f1);
  const Tensor f2 = linear_bias(ctx, f1, layer_name(l, "mlp.fc2"));
  ops::add(ctx, h, h, f2);
}

}  // namespace llama4
