// cut_to_shard: one rank's weight plan under tensor + expert parallelism. Each engine tensor gets
// the shape shard_weight_shape gives it (llama4/shard.h states which rows, columns and experts a
// rank holds), and each of its checkpoint pieces the part that fills it, so the stream reads only
// that part of the mapped file: a rank of N reads about 1/N of the sharded weights, and a
// concatenated tensor (q/k/v, gate/up) is never assembled whole first.
#include "llama4/error.h"
#include "model/checkpoint/weight_plan.h"

namespace llama4::checkpoint {

namespace {

PieceCut rows(int64_t first, int64_t count) { return PieceCut{0, first, count}; }
PieceCut columns(int64_t first, int64_t count) { return PieceCut{1, first, count}; }

bool is_expert_tensor(const std::string& role) {
  return role == "moe.gate_up" || role == "moe.down" || role == "moe.gate_up_scale" || role == "moe.down_scale";
}

// The routed experts [first, first + count): a fused [E, ...] source is cut along its first axis;
// per-expert sources (expert after expert, `per` tensors each) keep only those experts' tensors.
void keep_experts(PlannedTensor& p, int64_t E, int64_t first, int64_t count) {
  LLAMA4_CHECK(p.shape[0] == E, "weight table bug: '", p.name, "' does not start with the experts");
  if (p.hf_names.size() == 1) {
    p.cuts = {rows(first, count)};
    return;
  }
  const size_t per = p.hf_names.size() / size_t(E);
  p.hf_names = std::vector<std::string>(p.hf_names.begin() + first * per, p.hf_names.begin() + (first + count) * per);
}

// Gate and up pieces [I, D] each: rows [first, first + count) of both.
std::vector<PieceCut> halves(const PlannedTensor& p, int64_t first, int64_t count) {
  LLAMA4_CHECK(p.hf_names.size() == 2, "weight table bug: '", p.name, "' is not a gate and an up piece");
  return {rows(first, count), rows(first, count)};
}

// A row-parallel piece's columns for K elements [first, first + count) (the shared expert's and the
// dense MLP's down projections): weights hold one element a column, INT4 words (int32) eight, INT4
// scales a group of them. An INT4 cut (stored, or quantized at load after the cut) falls on group
// boundaries (check_int4_k_split, which shard_weight_shape also applies).
PieceCut k_columns(const PlannedTensor& p, const TextShard& s, const TextConfig& c, int64_t K, int64_t first,
                   int64_t count) {
  const int64_t cols = p.int4_words ? p.shape.back() / 4 : p.shape.back();  // p.shape: the whole tensor's
  LLAMA4_CHECK(cols > 0 && K % cols == 0, "weight table bug: '", p.name, "' has ", cols, " columns for K = ", K);
  const int64_t per = K / cols;
  if (per > 1 || p.quantize == Quantize::Int4)
    check_int4_k_split(p.name, K, first, count, p.quantize == Quantize::Int4 ? p.int4_group : c.moe_int4_group_size, s);
  return columns(first / per, count / per);
}

}  // namespace

void cut_to_shard(std::vector<PlannedTensor>& plan, const TextConfig& c, const TextShard& s) {
  if (s.single()) return;
  const int64_t d = c.head_dim;
  for (PlannedTensor& p : plan) {
    const std::string role = weight_role(p.name);
    const Shape full = p.shape;
    if (is_expert_tensor(role)) {
      keep_experts(p, c.num_local_experts, s.expert_first, s.expert_count);
    } else if (role == "embed_tokens" || role == "lm_head") {
      LLAMA4_CHECK(p.hf_names.size() == 1, "weight table bug: '", p.name, "' has several pieces");
      p.cuts = {rows(s.vocab_first, s.vocab_count)};
    } else if (role == "attn.qkv") {
      LLAMA4_CHECK(p.hf_names.size() == 3, "weight table bug: '", p.name, "' is not q, k and v pieces");
      p.cuts = {rows(s.q_first * d, s.q_count * d), rows(s.kv_first * d, s.kv_count * d),
                rows(s.kv_first * d, s.kv_count * d)};
    } else if (role == "attn.o") {
      p.cuts = {columns(s.q_first * d, s.q_count * d)};
    } else if (role == "moe.shared_gate_up" || role == "moe.shared_gate_up_scale") {
      p.cuts = halves(p, s.inter_first, s.inter_count);
    } else if (role == "mlp.gate_up" || role == "mlp.gate_up_scale") {
      p.cuts = halves(p, s.mlp_first, s.mlp_count);
    } else if (role == "moe.shared_down" || role == "moe.shared_down_scale") {
      p.cuts = {k_columns(p, s, c, c.intermediate_size, s.inter_first, s.inter_count)};
    } else if (role == "mlp.down" || role == "mlp.down_scale") {
      p.cuts = {k_columns(p, s, c, c.intermediate_size_mlp, s.mlp_first, s.mlp_count)};
    }
    p.shape = shard_weight_shape(p.name, full, c, s);
    // Vocabulary shards are padded to vocab_padded rows (+2 sentinel rows in the embedding table).
    p.zero_fill = role == "embed_tokens" || role == "lm_head";
  }
}

}  // namespace llama4::checkpoint
