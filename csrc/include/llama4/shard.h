// One rank's share of the text decoder under tensor parallelism with expert parallelism inside the
// group (Megatron-style, vLLM's --enable-expert-parallel). With N ranks, rank r holds:
//   attention   query heads [q_first, +q_count) = H/N of them (H % N == 0); KV heads split the same
//               way when KV % N == 0, else (N % KV == 0) the one KV head its query heads use,
//               replicated on N/KV ranks as vLLM does. attn.qkv: those heads' rows; attn.o: their
//               columns (row-parallel: each rank's output is a partial sum, all-reduced).
//   routed      whole experts [expert_first, +expert_count), an even split (counts differ by at most
//   experts     one when N does not divide E); the router is replicated, every rank routes every
//               token and runs only the choices of its own experts.
//   shared      the shared expert and the dense MLP split along their intermediate width (gate and
//   expert, MLP up rows [first, +count) of each half; down: those columns), partial sums all-reduced;
//               a MoE layer's routed and shared partials are summed first: one all-reduce per FFN.
//               INT4 (llama4/moe_int4.h): the same rows of the packed weights and their scales; the
//               down columns (K) must fall on group boundaries, else ValueError (check_int4_k_split).
//   vocabulary  rows [vocab_first, +vocab_count) of embed_tokens and lm_head, vocab_padded =
//               ceil(V / N) rows per rank (the last rank's missing rows are zeros). Each rank's
//               embedding table has two zero rows more: row vocab_padded stands for the tokens of
//               other ranks, row vocab_padded + 1 for image placeholders (their features are added on
//               rank 0 only), so the all-reduced sum is each token's one embedding. Logits: each rank
//               computes its vocab_padded columns, an all-gather puts them side by side.
//   replicated  the norms and the routers.
// Shapes of the engine names (llama4/model.h) on a rank: shard_weight_shape().
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llama4/config.h"
#include "llama4/tensor.h"

namespace llama4 {

struct TextShard {
  int rank = 0, size = 1;
  int64_t q_first = 0, q_count = 0;            // query heads
  int64_t kv_first = 0, kv_count = 0;          // KV heads
  int64_t expert_first = 0, expert_count = 0;  // routed experts
  int64_t inter_first = 0, inter_count = 0;    // shared expert intermediate_size
  int64_t mlp_first = 0, mlp_count = 0;        // dense MLP intermediate_size_mlp
  int64_t vocab_first = 0, vocab_count = 0, vocab_padded = 0;

  // The share of `rank` in a group of `size`; ValueError naming tensor_parallel_size when the
  // config cannot be split that way (heads that do not divide, fewer experts than ranks, ...).
  static TextShard of(const TextConfig& config, int rank, int size);
  bool single() const { return size == 1; }
};

// The shape rank `shard` holds of the engine tensor `name` whose full shape is `full` (an INT4
// down projection or its scales: check_int4_k_split first).
Shape shard_weight_shape(const std::string& name, const Shape& full, const TextConfig& config, const TextShard& shard);
// An INT4 weight cut along K (the shared expert's and the dense MLP's down projections: K columns
// [first, first + count) of K on this rank) must be cut on the boundaries of its groups of `group`:
// ValueError naming tensor_parallel_size, the tensor and the group size otherwise.
void check_int4_k_split(const std::string& name, int64_t K, int64_t first, int64_t count, int64_t group,
                        const TextShard& shard);
// What an engine name is within its layer: "layers.3.attn.qkv" -> "attn.qkv"; model-level names
// ("embed_tokens", "lm_head", ...) as they are.
std::string weight_role(const std::string& name);

// Bytes of the text-decoder weights rank `rank` of `size` holds (dtype: the model dtype; the MoE
// layers in fp8_moe_layers hold e4m3 experts with float32 scales, or INT4 ones when
// config.moe_int4_group_size > 0; int4_mlp_layers: text_weight_specs'): for a memory planner.
int64_t text_shard_weight_bytes(const TextConfig& config, DType dtype, const std::vector<int>& fp8_moe_layers,
                                int rank, int size, const std::vector<int>& int4_mlp_layers = {});

}  // namespace llama4
