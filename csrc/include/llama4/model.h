// The Llama 4 text decoder graph. Weights are views with the engine names below (the Python
// loader maps Hugging Face names to these; C++ applications may fill them directly). D = hidden,
// H/KV = heads, d = head_dim, E = experts, I = intermediate_size, Imlp = intermediate_size_mlp:
//   embed_tokens [V, D]   norm [D]   lm_head [V, D]
//   layers.{i}.input_layernorm [D]   layers.{i}.post_attention_layernorm [D]
//   layers.{i}.attn.qkv [(H + 2 KV) d, D]   layers.{i}.attn.o [D, H d]
//   MoE:   layers.{i}.moe.router [E, D]   layers.{i}.moe.gate_up [E, 2I, D] (gate rows, then up)
//          layers.{i}.moe.down [E, D, I]  layers.{i}.moe.shared_gate_up [2I, D]
//          layers.{i}.moe.shared_down [D, I]
//   dense: layers.{i}.mlp.gate_up [2 Imlp, D]   layers.{i}.mlp.down [D, Imlp]
// Layouts: row-major, except that float routed experts on the CPU may be Hugging Face's fused
// [E, D, 2I] / [E, I, D] (x @ W) viewed as the shapes above (ops::expert_layout KN): the loader
// keeps them where they lie in the memory map, and the CPU kernels read them there.
// All weights share the model dtype (float32 or bfloat16) and device, except FP8 experts: a MoE
// layer is FP8 iff its moe.gate_up is float8_e4m3fn; then moe.gate_up and moe.down are e4m3 and
// come with float32 per-output-channel scales (llama4/moe_fp8.h):
//          layers.{i}.moe.gate_up_scale [E, 2I]   layers.{i}.moe.down_scale [E, D]
// or INT4 experts (W4A16, llama4/moe_int4.h; config.moe_int4_group_size = G > 0): moe.gate_up is
// uint8 [E, 2I, D/2], moe.down uint8 [E, D, I/2], with bfloat16 scales per group of G along K:
//          layers.{i}.moe.gate_up_scale [E, 2I, D/G]   layers.{i}.moe.down_scale [E, D, I/G]
// A model's quantized layers are all FP8 or all INT4. An INT4 model may also hold a layer's shared
// expert or dense MLP in INT4 (its moe.shared_gate_up / mlp.gate_up is uint8), each projection with
// its scales:
//          layers.{i}.moe.shared_gate_up [2I, D/2] + _scale [2I, D/G]   moe.shared_down [D, I/2] + _scale [D, I/G]
//          layers.{i}.mlp.gate_up [2 Imlp, D/2] + _scale [2 Imlp, D/G]  mlp.down [D, Imlp/2] + _scale [D, Imlp/G]
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "llama4/config.h"
#include "llama4/context.h"
#include "llama4/kv_cache.h"
#include "llama4/shard.h"
#include "llama4/tensor.h"

namespace llama4 {

using WeightMap = std::unordered_map<std::string, TensorView>;

// One decoder layer's weights, resolved once from the WeightMap at construction, so the forward
// pass never looks a name up. Views into the WeightMap's tensors (shapes in the table above).
struct LayerWeights {
  TensorView input_layernorm, post_attention_layernorm;  // [D]
  TensorView qkv, o;                                      // attn.qkv, attn.o
  bool is_moe = false;
  // MoE layers: the router, the routed experts (e4m3 + scales when fp8, packed int4 + scales when
  // int4) and the shared expert.
  bool fp8 = false, int4 = false;
  TensorView router, gate_up, down, gate_up_scale, down_scale, shared_gate_up, shared_down;
  // Dense layers: the SwiGLU MLP.
  TensorView mlp_gate_up, mlp_down;
  // INT4 shared expert (MoE layers) or MLP (dense layers): packed weights above, their scales here.
  bool mlp_int4 = false;
  TensorView mlp_gate_up_scale, mlp_down_scale;  // (of the shared expert on MoE layers)
};

struct TextWeights {
  TensorView embed_tokens, norm, lm_head;
  std::vector<LayerWeights> layers;
};

class TextModel {
 public:
  // Checks that every weight the config needs is present with the right shape, dtype and device
  // (ValueError/TypeError naming the tensor) and that no unknown name is given. With a shard of
  // several ranks the weights are that rank's part (llama4/shard.h) and forward() runs in a context
  // whose communicator is that group's: every rank calls it with the same arguments.
  TextModel(TextConfig config, DType dtype, WeightMap weights, const TextShard& shard = TextShard());

  const TextConfig& config() const { return config_; }
  const TextShard& shard() const { return shard_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // One forward step over the tokens of a batch, laid out sequence after sequence as in `plan`.
  // Writes their K/V into `cache` and returns float32 logits [rows.size(), V] for the token
  // indices in `rows`. Early fusion: the tokens equal to image_token_id take the rows of
  // image_features [R, D] in order instead of their embedding (R must equal their count;
  // undefined features and image_token_id -1: text only).
  // Every op runs in ctx (on the weights' device; the logits are ready on its stream). Several
  // ranks: the logits are the whole vocabulary's on every rank; image_features are only read on
  // rank 0 (the others may pass undefined features with the same image_token_id).
  Tensor forward(const Context& ctx, const TensorView& token_ids, KVCache& cache,
                 const KVCache::StepPlan& plan, const std::vector<int32_t>& rows,
                 const TensorView& image_features = TensorView(), int64_t image_token_id = -1) const;
  // The decode-graph forward (model/decode_graphs.h): every token's logits row, written into
  // `logits` [T, V] float32 (contiguous, on the weights' device), text only, one rank. It reads
  // nothing from the host and writes nothing back, so it can be captured in a CUDA graph. The ops
  // are forward()'s with every row requested.
  void forward_into(const Context& ctx, const TensorView& token_ids, KVCache& cache,
                    const KVCache::StepPlan& plan, const TensorView& logits) const;
  const TensorView& embed_tokens() const { return w_.embed_tokens; }  // [V, D]
  const TextWeights& weights() const { return w_; }

 private:
  void check_context(const Context& ctx, const char* op) const;
  // The decoder stack: the residual stream [T, D] after the last layer (before the final norm).
  Tensor hidden_states(const Context& ctx, const TensorView& token_ids, KVCache& cache,
                       const KVCache::StepPlan& plan, const TensorView& image_features,
                       int64_t image_token_id) const;
  Tensor attention(const Context& ctx, int layer, const TensorView& x, KVCache& cache,
                   const KVCache::StepPlan& plan) const;
  Tensor feed_forward(const Context& ctx, int layer, const TensorView& x) const;
  Tensor moe(const Context& ctx, const LayerWeights& w, const TensorView& x) const;
  Tensor mlp(const Context& ctx, const LayerWeights& w, const TensorView& x) const;
  // Sharded pieces: the embedding of the rank's vocabulary rows (all-reduced), the routed experts
  // of the rank (expert parallelism), and the logits gathered from every rank.
  Tensor embed_shard(const Context& ctx, const TensorView& token_ids, const TensorView& image_features,
                     int64_t image_token_id) const;
  void moe_shard(const Context& ctx, const LayerWeights& w, const TensorView& x, const TensorView& logits,
                 const TensorView& out) const;
  Tensor gather_logits(const Context& ctx, const TensorView& local) const;
  void all_reduce(const Context& ctx, const TensorView& t) const;

  TextConfig config_;
  TextShard shard_;
  DType dtype_;
  Device device_;
  WeightMap weights_;  // what the caller gave (the views below point into it)
  TextWeights w_;
  Tensor inv_freq_;  // [head_dim / 2] float32
};

// The weight names and shapes a config needs (used for validation and by loaders), with the
// quantized experts' scales for the MoE layers listed in fp8_moe_layers: FP8, or INT4 (packed
// shapes) when config.moe_int4_group_size > 0; the layers in int4_mlp_layers hold their shared
// expert (MoE layers) or dense MLP in INT4 (packed, with scales; needs moe_int4_group_size > 0).
std::vector<std::pair<std::string, Shape>> expected_text_weights(const TextConfig& config,
                                                                 const std::vector<int>& fp8_moe_layers = {},
                                                                 const std::vector<int>& int4_mlp_layers = {});

}  // namespace llama4
