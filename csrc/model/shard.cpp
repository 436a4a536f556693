// TextShard (llama4/shard.h): which heads, experts, intermediate columns and vocabulary rows a rank
// holds, and the shapes that gives each engine tensor (the loader's cut_to_shard reads just that).
#include "llama4/shard.h"

#include "llama4/error.h"
#include "llama4/memory_plan.h"

namespace llama4 {

namespace {

// An even split of n items over `size` ranks: rank r's first item and count.
std::pair<int64_t, int64_t> even(int64_t n, int rank, int size) {
  const int64_t a = n * rank / size, b = n * (rank + 1) / size;
  return {a, b - a};
}

}  // namespace

std::string weight_role(const std::string& name) {
  if (name.rfind("layers.", 0) != 0) return name;
  const size_t dot = name.find('.', 7);
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

TextShard TextShard::of(const TextConfig& c, int rank, int size) {
  LLAMA4_CHECK_ARG(size >= 1, "tensor_parallel_size must be >= 1, got ", size);
  LLAMA4_CHECK_ARG(0 <= rank && rank < size, "rank ", rank, " is outside tensor_parallel_size ", size);
  TextShard s;
  s.rank = rank;
  s.size = size;
  const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads, N = size;
  LLAMA4_CHECK_ARG(H % N == 0, "tensor_parallel_size ", N, " must divide num_attention_heads = ", H);
  s.q_count = H / N;
  s.q_first = rank * s.q_count;
  if (KV % N == 0) {
    s.kv_count = KV / N;
    s.kv_first = rank * s.kv_count;
  } else {
    LLAMA4_CHECK_ARG(N % KV == 0, "tensor_parallel_size ", N, " must divide num_key_value_heads = ", KV,
                     " or be a multiple of it (then each KV head is replicated on ", "tensor_parallel_size / KV ranks)");
    s.kv_count = 1;
    s.kv_first = rank / (N / KV);
  }
  if (!c.moe_layers.empty()) {
    LLAMA4_CHECK_ARG(c.num_local_experts >= N, "tensor_parallel_size ", N, " is more than num_local_experts = ",
                     c.num_local_experts, " (every rank holds at least one routed expert)");
    std::tie(s.expert_first, s.expert_count) = even(c.num_local_experts, rank, size);
  }
  LLAMA4_CHECK_ARG(c.intermediate_size >= N && c.intermediate_size_mlp >= N, "tensor_parallel_size ", N,
                   " is more than intermediate_size = ", c.intermediate_size, " or intermediate_size_mlp = ",
                   c.intermediate_size_mlp);
  std::tie(s.inter_first, s.inter_count) = even(c.intermediate_size, rank, size);
  std::tie(s.mlp_first, s.mlp_count) = even(c.intermediate_size_mlp, rank, size);
  s.vocab_padded = (c.vocab_size + N - 1) / N;
  s.vocab_first = rank * s.vocab_padded;
  s.vocab_count = std::min<int64_t>(c.vocab_size, s.vocab_first + s.vocab_padded) - s.vocab_first;
  LLAMA4_CHECK_ARG(s.vocab_count >= 1, "tensor_parallel_size ", N, " leaves rank ", rank,
                   " no vocabulary rows (vocab_size = ", c.vocab_size, ")");
  return s;
}

Shape shard_weight_shape(const std::string& name, const Shape& full, const TextConfig& c, const TextShard& s) {
  if (s.single()) return full;
  const std::string w = weight_role(name);
  const int64_t d = c.head_dim;
  if (w == "embed_tokens") return {s.vocab_padded + 2, full[1]};
  if (w == "lm_head") return {s.vocab_padded, full[1]};
  if (w == "attn.qkv") return {(s.q_count + 2 * s.kv_count) * d, full[1]};
  if (w == "attn.o") return {full[0], s.q_count * d};
  if (w == "moe.gate_up" || w == "moe.down" || w == "moe.gate_up_scale" || w == "moe.down_scale") {
    Shape out = full;
    out[0] = s.expert_count;
    return out;
  }
  // Gate and up rows (INT4: their packed rows and scale rows alike).
  if (w == "moe.shared_gate_up" || w == "moe.shared_gate_up_scale") return {2 * s.inter_count, full[1]};
  if (w == "mlp.gate_up" || w == "mlp.gate_up_scale") return {2 * s.mlp_count, full[1]};
  // Down columns, i.e. a cut of K: full[1] holds K weights, K / 2 packed INT4 bytes or K / G scales.
  const bool shared_down = w == "moe.shared_down" || w == "moe.shared_down_scale";
  if (shared_down || w == "mlp.down" || w == "mlp.down_scale") {
    const int64_t K = shared_down ? c.intermediate_size : c.intermediate_size_mlp;
    const int64_t first = shared_down ? s.inter_first : s.mlp_first, count = shared_down ? s.inter_count : s.mlp_count;
    LLAMA4_CHECK(full[1] > 0 && K % full[1] == 0, "'", name, "' of ", full[1], " columns is no form of K = ", K);
    const int64_t per = K / full[1];  // K elements per column: 1 (weights), 2 (packed int4), G (scales)
    if (per > 1) check_int4_k_split(name, K, first, count, c.moe_int4_group_size, s);
    return {full[0], count / per};
  }
  return full;  // norms, routers
}

void check_int4_k_split(const std::string& name, int64_t K, int64_t first, int64_t count, int64_t group,
                        const TextShard& s) {
  LLAMA4_CHECK(group > 0, "'", name, "' is INT4 but the config has no moe_int4_group_size");
  LLAMA4_CHECK_ARG(first % group == 0 && count % group == 0, "tensor_parallel_size ", s.size, " cuts the INT4 weight '",
                   name, "' along its K = ", K, " at [", first, ", ", first + count, ") on rank ", s.rank,
                   ", not on the boundaries of its groups of ", group, " (int4_group_size): each rank's share of K "
                   "must be whole groups (K / group = ", K / group, " groups over ", s.size, " ranks)");
}

int64_t text_shard_weight_bytes(const TextConfig& config, DType dtype, const std::vector<int>& fp8_moe_layers,
                                int rank, int size, const std::vector<int>& int4_mlp_layers) {
  const TextShard s = TextShard::of(config, rank, size);
  int64_t n = 0;
  for (const WeightSpec& w : text_weight_specs(config, dtype, fp8_moe_layers, int4_mlp_layers)) {
    const TensorView layout(nullptr, w.dtype, shard_weight_shape(w.name, w.shape, config, s));
    n += layout.nbytes();
  }
  return n;
}

}  // namespace llama4
