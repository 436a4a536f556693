// The Llama 4 text decoder forward pass, composed of ops (so it runs wherever the ops run):
//   h = embed(ids); per layer: h += o(attn(rmsnorm(h))); h += ffn(rmsnorm(h)); logits = lm_head(norm(h))
// Attention: fused QKV projection; RoPE + QK-norm on RoPE layers (chunked-local attention);
// NoPE layers attend globally with temperature-tuned queries. FFN: MoE (top-k sigmoid router
// scaling the expert input, plus the shared expert) or a dense SwiGLU MLP.
#include <cmath>
#include <unordered_set>

#include "llama4/communicator.h"
#include "llama4/error.h"
#include "llama4/memory_plan.h"
#include "llama4/model.h"
#include "llama4/moe_fp8.h"
#include "llama4/ops.h"
#include "model/moe_int4_experts.h"

namespace llama4 {

namespace {
std::string layer_name(int layer, const char* what) {
  return "layers." + std::to_string(layer) + "." + what;
}

// Heads [first, first + count) of a fused projection row [T, n_total * d] as a [T, count, d] view.
TensorView heads_view(const TensorView& fused, int64_t first, int64_t count, int64_t d) {
  TensorView v = fused;
  v.ndim = 3;
  v.shape = {fused.size(0), count, d, 0, 0, 0};
  v.strides = {fused.stride(0), d, 1, 0, 0, 0};
  v.data = static_cast<char*>(fused.data) + first * d * int64_t(element_size(fused.dtype));
  return v;
}

// The layers whose routed experts are quantized: a MoE layer is FP8 iff its moe.gate_up is e4m3,
// INT4 iff it is uint8 (then the config must say the group size; a model is all FP8 or all INT4).
std::vector<int> quantized_moe_layers(const TextConfig& c, const WeightMap& w) {
  std::vector<int> out;
  int fp8 = -1, int4 = -1;  // a layer of each kind
  for (int i = 0; i < int(c.num_hidden_layers); ++i) {
    if (!c.is_moe_layer(i)) continue;
    auto it = w.find(layer_name(i, "moe.gate_up"));
    if (it == w.end()) continue;
    if (it->second.dtype == DType::F8E4M3) fp8 = i;
    if (it->second.dtype == DType::U8) int4 = i;
    if (it->second.dtype == DType::F8E4M3 || it->second.dtype == DType::U8) out.push_back(i);
  }
  LLAMA4_CHECK_TYPE(fp8 < 0 || int4 < 0, "weight '", layer_name(fp8, "moe.gate_up"), "' is FP8 but '",
                    layer_name(int4, "moe.gate_up"), "' is INT4 (uint8); a model's quantized experts share one format");
  LLAMA4_CHECK_ARG(int4 < 0 || c.moe_int4_group_size > 0, "weight '", layer_name(int4, "moe.gate_up"),
                   "' is uint8 (INT4 experts), but the config's moe_int4_group_size is 0 (set it to the scales' group size)");
  return out;
}

// The layers whose shared expert (MoE) or dense MLP is INT4: its gate_up is uint8 (then the config
// must say the group size).
std::vector<int> int4_mlp_layers(const TextConfig& c, const WeightMap& w) {
  std::vector<int> out;
  for (int i = 0; i < int(c.num_hidden_layers); ++i) {
    const std::string name = layer_name(i, c.is_moe_layer(i) ? "moe.shared_gate_up" : "mlp.gate_up");
    auto it = w.find(name);
    if (it == w.end() || it->second.dtype != DType::U8) continue;
    LLAMA4_CHECK_ARG(c.moe_int4_group_size > 0, "weight '", name, "' is uint8 (INT4), but the config's "
                     "moe_int4_group_size is 0 (set it to the scales' group size)");
    out.push_back(i);
  }
  return out;
}

// The typed view of a validated WeightMap (every name is known to be present).
TextWeights resolve_weights(const TextConfig& c, const WeightMap& w) {
  TextWeights out;
  out.embed_tokens = w.at("embed_tokens");
  out.norm = w.at("norm");
  out.lm_head = w.at("lm_head");
  out.layers.resize(size_t(c.num_hidden_layers));
  for (int i = 0; i < int(c.num_hidden_layers); ++i) {
    LayerWeights& l = out.layers[size_t(i)];
    auto get = [&](const char* what) -> const TensorView& { return w.at(layer_name(i, what)); };
    l.input_layernorm = get("input_layernorm");
    l.post_attention_layernorm = get("post_attention_layernorm");
    l.qkv = get("attn.qkv");
    l.o = get("attn.o");
    l.is_moe = c.is_moe_layer(i);
    l.mlp_int4 = get(l.is_moe ? "moe.shared_gate_up" : "mlp.gate_up").dtype == DType::U8;
    if (l.mlp_int4) {  // the shared expert's (MoE layers) or the MLP's scales
      l.mlp_gate_up_scale = get(l.is_moe ? "moe.shared_gate_up_scale" : "mlp.gate_up_scale");
      l.mlp_down_scale = get(l.is_moe ? "moe.shared_down_scale" : "mlp.down_scale");
    }
    if (l.is_moe) {
      l.router = get("moe.router");
      l.gate_up = get("moe.gate_up");
      l.down = get("moe.down");
      l.shared_gate_up = get("moe.shared_gate_up");
      l.shared_down = get("moe.shared_down");
      l.fp8 = l.gate_up.dtype == DType::F8E4M3;
      l.int4 = l.gate_up.dtype == DType::U8;
      if (l.fp8 || l.int4) {
        l.gate_up_scale = get("moe.gate_up_scale");
        l.down_scale = get("moe.down_scale");
      }
    } else {
      l.mlp_gate_up = get("mlp.gate_up");
      l.mlp_down = get("mlp.down");
    }
  }
  return out;
}

// Columns [first, first + count) of a [T, N] tensor as a [T, count] view.
TensorView column_view(const TensorView& t, int64_t first, int64_t count) {
  TensorView v = t;
  v.shape[1] = count;
  v.data = static_cast<char*>(t.data) + first * int64_t(element_size(t.dtype));
  return v;
}
}  // namespace

TextModel::TextModel(TextConfig config, DType dtype, WeightMap weights, const TextShard& shard)
    : config_(std::move(config)), dtype_(dtype), weights_(std::move(weights)) {
  config_.validate();
  shard_ = TextShard::of(config_, shard.rank, shard.size);
  LLAMA4_CHECK_TYPE(dtype == DType::F32 || dtype == DType::BF16,
                    "model dtype must be float32 or bfloat16, got ", dtype_name(dtype));
  const std::vector<int> quantized = quantized_moe_layers(config_, weights_);
  // The same table the memory planner counts (llama4/memory_plan.h).
  const std::vector<WeightSpec> expected =
      text_weight_specs(config_, dtype, quantized, int4_mlp_layers(config_, weights_));
  std::unordered_set<std::string> known;
  for (const WeightSpec& e : expected) known.insert(e.name);
  bool first = true;
  for (const auto& [name, shape, want_dtype] : expected) {
    auto it = weights_.find(name);
    LLAMA4_CHECK_ARG(it != weights_.end(), "missing weight '", name, "'");
    const TensorView& t = it->second;
    LLAMA4_CHECK_TYPE(t.dtype == want_dtype, "weight '", name, "' must have dtype ",
                      dtype_name(want_dtype), ", got ", dtype_name(t.dtype));
    const TensorView want(nullptr, dtype, shard_weight_shape(name, shape, config_, shard_));
    LLAMA4_CHECK_ARG(t.sizes() == want.sizes(), "weight '", name, "' must have shape ",
                     want.shape_str(), ", got ", t.shape_str());
    // Float experts on the CPU may stay in Hugging Face's fused layout (ops::ExpertLayout::KN).
    const std::string role = weight_role(name);
    const bool experts_in_place = (role == "moe.gate_up" || role == "moe.down") && t.dtype == dtype &&
                                  t.device.is_cpu() && ops::expert_layout(t) == ops::ExpertLayout::KN;
    LLAMA4_CHECK_ARG(t.is_contiguous() || experts_in_place, "weight '", name, "' must be contiguous",
                     role == "moe.gate_up" || role == "moe.down"
                         ? " (or, on the CPU, each expert a transposed row-major [K, N]: ops::expert_layout)"
                         : "");
    if (first) device_ = t.device;
    first = false;
    LLAMA4_CHECK_TYPE(t.device == device_, "weight '", name, "' is on ", t.device.str(),
                      " but the others are on ", device_.str());
  }
  for (const auto& [name, view] : weights_)
    LLAMA4_CHECK_ARG(known.count(name), "unexpected weight '", name, "' for this config");

  w_ = resolve_weights(config_, weights_);

  const std::vector<float> f = rope_inv_freq(int(config_.head_dim), config_.rope_theta, config_.rope_scaling);
  const Context ctx = Context::on(device_);
  inv_freq_ = ops::to_device(ctx, TensorView(const_cast<float*>(f.data()), DType::F32, {int64_t(f.size())}),
                             device_);
  ctx.synchronize();  // the table is read from the engine's stream later
}

void TextModel::check_context(const Context& ctx, const char* op) const {
  LLAMA4_CHECK_TYPE(ctx.device() == device_, op, ": the context is on ", ctx.device().str(),
                    " but the weights are on ", device_.str());
  LLAMA4_CHECK_ARG(ctx.world_size() == shard_.size && ctx.rank() == shard_.rank, op, ": the weights "
                   "are rank ", shard_.rank, " of ", shard_.size, "'s but the context's communicator is rank ",
                   ctx.rank(), " of ", ctx.world_size());
}

Tensor TextModel::hidden_states(const Context& ctx, const TensorView& token_ids, KVCache& cache,
                                const KVCache::StepPlan& plan, const TensorView& image_features,
                                int64_t image_token_id) const {
  const int64_t T = token_ids.size(0), D = config_.hidden_size;
  Tensor h;
  if (shard_.single()) {
    h = ctx.empty({T, D}, dtype_);
    const int64_t n_image = image_features.ndim > 0 ? image_features.size(0) : 0;
    ops::embedding_fused(ctx, h, w_.embed_tokens, token_ids, image_features, image_token_id, n_image);
  } else {
    h = embed_shard(ctx, token_ids, image_features, image_token_id);
  }
  Tensor x = ctx.empty({T, D}, dtype_);
  for (int i = 0; i < int(config_.num_hidden_layers); ++i) {
    const LayerWeights& lw = w_.layers[size_t(i)];
    ops::rms_norm(ctx, x, h, lw.input_layernorm, config_.rms_norm_eps);
    const Tensor attn = attention(ctx, i, x, cache, plan);
    ops::add(ctx, h, h, attn);
    ops::rms_norm(ctx, x, h, lw.post_attention_layernorm, config_.rms_norm_eps);
    const Tensor ffn = feed_forward(ctx, i, x);
    ops::add(ctx, h, h, ffn);
  }
  return h;
}

Tensor TextModel::forward(const Context& ctx, const TensorView& token_ids, KVCache& cache,
                          const KVCache::StepPlan& plan, const std::vector<int32_t>& rows,
                          const TensorView& image_features, int64_t image_token_id) const {
  check_context(ctx, "TextModel.forward");
  const int64_t D = config_.hidden_size;
  const Tensor h = hidden_states(ctx, token_ids, cache, plan, image_features, image_token_id);
  // Only the requested rows go through the final norm and the vocabulary projection.
  const int64_t R = int64_t(rows.size());
  if (R == 0) return ctx.empty({0, config_.vocab_size}, DType::F32);  // a prefill chunk
  Tensor row_ids = Tensor::empty({R}, DType::I32, Device::cpu());
  std::copy(rows.begin(), rows.end(), row_ids.ptr<int32_t>());
  Tensor picked = ctx.empty({R, D}, dtype_);
  ops::embedding(ctx, picked, h, ops::to_device(ctx, row_ids, device_));
  Tensor normed = ctx.empty({R, D}, dtype_);
  ops::rms_norm(ctx, normed, picked, w_.norm, config_.rms_norm_eps);
  Tensor logits = ctx.empty({R, w_.lm_head.size(0)}, DType::F32);
  ops::linear(ctx, logits, normed, w_.lm_head);
  return shard_.single() ? logits : gather_logits(ctx, logits);
}

void TextModel::forward_into(const Context& ctx, const TensorView& token_ids, KVCache& cache,
                             const KVCache::StepPlan& plan, const TensorView& logits) const {
  constexpr const char* op = "TextModel.forward_into";
  check_context(ctx, op);
  LLAMA4_CHECK_ARG(shard_.single(), op, ": one rank only (the logits of several ranks are gathered)");
  const int64_t T = token_ids.size(0), D = config_.hidden_size;
  LLAMA4_CHECK_ARG(logits.dtype == DType::F32 && logits.ndim == 2 && logits.size(0) == T &&
                       logits.size(1) == config_.vocab_size && logits.is_contiguous() && logits.device == device_,
                   op, ": 'logits' must be a contiguous [", T, ", ", config_.vocab_size, "] float32 tensor on ",
                   device_.str(), ", got ", dtype_name(logits.dtype), " ", logits.shape_str(), " on ",
                   logits.device.str());
  // Everything is read from device memory the caller fixed (token ids, the plan) and written to
  // `logits`: nothing goes to or comes from the host, so the call can be captured in a CUDA graph.
  const Tensor h = hidden_states(ctx, token_ids, cache, plan, TensorView(), -1);
  Tensor normed = ctx.empty({T, D}, dtype_);
  ops::rms_norm(ctx, normed, h, w_.norm, config_.rms_norm_eps);
  ops::linear(ctx, logits, normed, w_.lm_head);
}

Tensor TextModel::attention(const Context& ctx, int i, const TensorView& x, KVCache& cache,
                            const KVCache::StepPlan& plan) const {
  const TextConfig& c = config_;
  const int64_t T = x.size(0), H = shard_.q_count, KV = shard_.kv_count, d = c.head_dim;  // this rank's heads
  Tensor qkv = ctx.empty({T, (H + 2 * KV) * d}, dtype_);
  const LayerWeights& lw = w_.layers[size_t(i)];
  ops::linear(ctx, qkv, x, lw.qkv);
  TensorView q = heads_view(qkv, 0, H, d), k = heads_view(qkv, H, KV, d), v = heads_view(qkv, H + KV, KV, d);

  const bool rope = c.uses_rope(i);
  Tensor q_rot, k_rot;
  if (rope) {  // RoPE, then QK-norm (transformers' order; only on RoPE layers)
    q_rot = ctx.empty({T, H, d}, dtype_);
    k_rot = ctx.empty({T, KV, d}, dtype_);
    ops::rope(ctx, q_rot, q, plan.query_pos, inv_freq_);
    ops::rope(ctx, k_rot, k, plan.query_pos, inv_freq_);
    if (c.use_qk_norm) {
      ops::rms_norm(ctx, q_rot, q_rot, TensorView(), c.rms_norm_eps);
      ops::rms_norm(ctx, k_rot, k_rot, TensorView(), c.rms_norm_eps);
    }
    q = q_rot;
    k = k_rot;
  }
  const int group = cache.group_of(i);
  const ops::KVScales scales = cache.scales(i);  // FP8 caches: per (token, head) scales
  ops::cache_write(ctx, cache.k(i), cache.v(i), k, v, plan.slots[group], scales);

  ops::AttentionParams params;
  params.scale = 1.0f / std::sqrt(float(d));
  params.chunk_size = rope ? c.attention_chunk_size : 0;  // RoPE layers: chunked-local; NoPE: global
  params.attn_scale = (!rope && c.attn_temperature_tuning) ? c.attn_scale : 0.0f;
  params.floor_scale = c.floor_scale;
  Tensor out = ctx.empty({T, H, d}, dtype_);
  ops::paged_attention(ctx, out, q, cache.k(i), cache.v(i), plan.page_table[group], plan.query_seq,
                       plan.query_pos, params, scales);
  Tensor o = ctx.empty({T, c.hidden_size}, dtype_);
  ops::linear(ctx, o, out.view().reshape({T, H * d}), lw.o);
  all_reduce(ctx, o);  // o_proj is row-parallel: each rank's heads give a partial sum
  return o;
}

Tensor TextModel::feed_forward(const Context& ctx, int i, const TensorView& x) const {
  const LayerWeights& lw = w_.layers[size_t(i)];
  Tensor out = lw.is_moe ? moe(ctx, lw, x) : mlp(ctx, lw, x);
  all_reduce(ctx, out);  // one all-reduce per feed-forward: MLP or shared expert + routed experts
  return out;
}

// down(silu(x gate^T) * (x up^T)) with gate_up [2I, D] = [gate rows; up rows]: the layer's dense MLP
// or (MoE layers) its shared expert, in INT4 when the layer holds it so (model/moe_int4_experts.h).
Tensor TextModel::mlp(const Context& ctx, const LayerWeights& w, const TensorView& x) const {
  const TensorView& gate_up = w.is_moe ? w.shared_gate_up : w.mlp_gate_up;
  const TensorView& down = w.is_moe ? w.shared_down : w.mlp_down;
  if (w.mlp_int4) return detail::mlp_int4(ctx, x, gate_up, w.mlp_gate_up_scale, down, w.mlp_down_scale, dtype_);
  const int64_t T = x.size(0), I = gate_up.size(0) / 2;
  Tensor gu = ctx.empty({T, 2 * I}, dtype_);
  ops::linear(ctx, gu, x, gate_up);
  Tensor act = ctx.empty({T, I}, dtype_);
  ops::silu_gate(ctx, act, column_view(gu, 0, I), column_view(gu, I, I));
  Tensor out = ctx.empty({T, down.size(0)}, dtype_);
  ops::linear(ctx, out, act, down);
  return out;
}

// Route -> permute by expert (inputs scaled by the router score) -> the experts' SwiGLU as two
// grouped linears over the permuted rows -> un-permute, summed per token and added to the shared
// expert's output. The expert offsets stay where they were computed (no host read on a GPU). FP8
// experts run the same steps in one op (ops::moe_fp8, llama4/moe_fp8.h); INT4 experts the same
// steps with the INT4 grouped GEMM (model/moe_int4_experts.h).
Tensor TextModel::moe(const Context& ctx, const LayerWeights& w, const TensorView& x) const {
  const TextConfig& c = config_;
  const int64_t T = x.size(0), D = c.hidden_size, E = c.num_local_experts, k = c.num_experts_per_tok;
  // The router logits stay fp32 (transformers rounds them to the model dtype). In bf16 that rounding
  // makes near experts tie exactly, and torch.topk then picks one arbitrarily; routing on the
  // unrounded logits follows the fp32 model's choice instead. Identical in fp32.
  Tensor logits = ctx.empty({T, E}, DType::F32);
  ops::linear(ctx, logits, x, w.router);
  if (!shard_.single()) {
    Tensor out = mlp(ctx, w, x);  // this rank's part of the shared expert
    moe_shard(ctx, w, x, logits, out);
    return out;
  }
  if (w.fp8) {
    Tensor out = mlp(ctx, w, x);
    const ops::MoeFp8Experts ex{w.gate_up, w.gate_up_scale, w.down, w.down_scale};
    ops::moe_fp8(ctx, out, x, logits, out, ex, k, c.moe_fp8_activation_scale_ub);
    return out;
  }
  Tensor ids = ctx.empty({T, k}, DType::I32);
  Tensor scores = ctx.empty({T, k}, dtype_);
  ops::moe_route(ctx, ids, scores, logits);

  Tensor x_perm = ctx.empty({T * k, D}, dtype_);
  Tensor perm_token = ctx.empty({T * k}, DType::I32);
  Tensor perm_slot = ctx.empty({T * k}, DType::I32);
  Tensor offsets = ctx.empty({E + 1}, DType::I32);
  ops::moe_permute(ctx, x_perm, perm_token, perm_slot, offsets, x, ids, scores);

  if (w.int4) {
    const Tensor y_perm = detail::moe_int4_experts(ctx, w, x_perm, offsets, dtype_);
    Tensor out = mlp(ctx, w, x);
    ops::moe_unpermute(ctx, out, y_perm, perm_slot, out);
    return out;
  }
  const int64_t I = w.gate_up.size(1) / 2;
  Tensor gu = ctx.empty({T * k, 2 * I}, dtype_);
  ops::grouped_linear(ctx, gu, x_perm, w.gate_up, offsets);
  Tensor act = ctx.empty({T * k, I}, dtype_);
  ops::silu_gate(ctx, act, column_view(gu, 0, I), column_view(gu, I, I));
  Tensor y_perm = ctx.empty({T * k, D}, dtype_);
  ops::grouped_linear(ctx, y_perm, act, w.down, offsets);

  Tensor out = mlp(ctx, w, x);
  ops::moe_unpermute(ctx, out, y_perm, perm_slot, out);
  return out;
}

}  // namespace llama4
