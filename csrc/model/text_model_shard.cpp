// The parts of the text decoder's forward pass that differ on a rank of a tensor-parallel group
// (llama4/shard.h): the vocabulary-parallel embedding, the rank's routed experts, the all-gather of
// the logits, and the all-reduces of the row-parallel partial sums.
#include "llama4/communicator.h"
#include "llama4/error.h"
#include "llama4/model.h"
#include "llama4/moe_fp8.h"
#include "llama4/ops.h"
#include "model/moe_int4_experts.h"

namespace llama4 {

namespace {
// Columns [first, first + count) of a [T, N] tensor as a [T, count] view.
TensorView columns(const TensorView& t, int64_t first, int64_t count) {
  TensorView v = t;
  v.shape[1] = count;
  v.data = static_cast<char*>(t.data) + first * int64_t(element_size(t.dtype));
  return v;
}
}  // namespace

void TextModel::all_reduce(const Context& ctx, const TensorView& t) const {
  if (shard_.single()) return;
  ctx.communicator()->all_reduce(ctx, t);
}

// Each rank looks up the tokens of its vocabulary rows; the others' tokens read a zero row, and so
// do image placeholders except on rank 0, which writes their feature rows. The all-reduced sum is
// then every token's embedding (one rank contributes each row, so the sum is exact).
Tensor TextModel::embed_shard(const Context& ctx, const TensorView& token_ids, const TensorView& image_features,
                              int64_t image_token_id) const {
  const int64_t T = token_ids.size(0), V = config_.vocab_size, Vs = shard_.vocab_padded;
  const Tensor ids = ops::to_device(ctx, token_ids, Device::cpu());  // the host made them: a copy back
  Tensor local = Tensor::empty({T}, DType::I32, Device::cpu());
  int64_t placeholders = 0;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t id = ids.dtype() == DType::I64 ? ids.ptr<int64_t>()[t] : ids.ptr<int32_t>()[t];
    LLAMA4_CHECK_ARG(0 <= id && id < V, "embedding_fused: token id ", id, " at position ", t,
                     " is outside the vocabulary [0, ", V, ")");
    const int64_t own = id - shard_.vocab_first;
    int32_t row = int32_t(own >= 0 && own < shard_.vocab_count ? own : Vs);
    if (image_token_id >= 0 && id == image_token_id) {
      row = int32_t(Vs + 1);
      ++placeholders;
    }
    local.ptr<int32_t>()[t] = row;
  }
  const bool features = shard_.rank == 0 && placeholders > 0;
  Tensor h = ctx.empty({T, config_.hidden_size}, dtype_);
  ops::embedding_fused(ctx, h, w_.embed_tokens, ops::to_device(ctx, local, device_),
                       features ? image_features : TensorView(), features ? Vs + 1 : -1, features ? placeholders : 0);
  all_reduce(ctx, h);
  return h;
}

// Expert parallelism: every rank routes every token (the router is replicated), keeps the choices
// of its own experts (moe_localize: the others go to a group no GEMM computes, whose rows stay zero)
// and adds their outputs to `out`, its partial of the shared expert. The FP8 experts run
// llama4/moe_fp8.h's steps one op at a time (same roundings as ops::moe_fp8, row by row); the INT4
// experts the shared steps of model/moe_int4_experts.h on the rank's experts.
void TextModel::moe_shard(const Context& ctx, const LayerWeights& w, const TensorView& x, const TensorView& logits,
                          const TensorView& out) const {
  const int64_t T = x.size(0), D = config_.hidden_size, k = config_.num_experts_per_tok;
  const int64_t El = shard_.expert_count, R = T * k, I = w.gate_up.size(1) / 2;
  Tensor ids = ctx.empty({T, k}, DType::I32);
  Tensor scores = ctx.empty({T, k}, dtype_);
  ops::moe_route(ctx, ids, scores, logits);
  ops::moe_localize(ctx, ids, shard_.expert_first, El);
  Tensor x_perm = ctx.empty({R, D}, dtype_);
  Tensor perm_token = ctx.empty({R}, DType::I32), perm_slot = ctx.empty({R}, DType::I32);
  Tensor offsets = ctx.empty({El + 2}, DType::I32);
  ops::moe_permute(ctx, x_perm, perm_token, perm_slot, offsets, x, ids, scores);
  const TensorView own = offsets.view().slice0(0, El + 1);  // group El (other ranks' experts) is left out

  if (w.int4) {
    const Tensor y_perm = detail::moe_int4_experts(ctx, w, x_perm, own, dtype_);
    ops::moe_unpermute(ctx, out, y_perm, perm_slot, out);
    return;
  }
  Tensor y_perm = ctx.zeros({R, D}, dtype_);
  if (!w.fp8) {
    Tensor gu = ctx.zeros({R, 2 * I}, dtype_);
    ops::grouped_linear(ctx, gu, x_perm, w.gate_up, own);
    Tensor act = ctx.empty({R, I}, dtype_);
    ops::silu_gate(ctx, act, columns(gu, 0, I), columns(gu, I, I));
    ops::grouped_linear(ctx, y_perm, act, w.down, own);
  } else {
    const float ub = config_.moe_fp8_activation_scale_ub;
    Tensor a = ctx.empty({R, D}, DType::F8E4M3), a_scale = ctx.empty({R}, DType::F32);
    ops::quantize_fp8_rowwise(ctx, a, a_scale, x_perm, ub);
    Tensor gu = ctx.zeros({R, 2 * I}, DType::BF16);
    ops::moe_grouped_gemm_fp8(ctx, gu, a, a_scale, w.gate_up, w.gate_up_scale, own);
    Tensor h = ctx.empty({R, I}, DType::BF16);
    ops::silu_gate(ctx, h, columns(gu, 0, I), columns(gu, I, I));
    Tensor hq = ctx.empty({R, I}, DType::F8E4M3), h_scale = ctx.empty({R}, DType::F32);
    ops::quantize_fp8_rowwise(ctx, hq, h_scale, h, ub);
    Tensor y = dtype_ == DType::BF16 ? y_perm : ctx.zeros({R, D}, DType::BF16);
    ops::moe_grouped_gemm_fp8(ctx, y, hq, h_scale, w.down, w.down_scale, own);
    if (dtype_ != DType::BF16) ops::cast(ctx, y_perm, y);  // widening is exact
  }
  ops::moe_unpermute(ctx, out, y_perm, perm_slot, out);
}

// local [R, vocab_padded] float32 on every rank -> [R, V]: rank n's columns are [n * Vs, ...).
Tensor TextModel::gather_logits(const Context& ctx, const TensorView& local) const {
  const int64_t R = local.size(0), Vs = shard_.vocab_padded, N = shard_.size, V = config_.vocab_size;
  Tensor all = ctx.empty({N * R, Vs}, DType::F32);
  ctx.communicator()->all_gather(ctx, all, local);
  Tensor out = ctx.empty({R, V}, DType::F32);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t cols = std::min(Vs, V - n * Vs);
    ops::copy(ctx, columns(out, n * Vs, cols), columns(all.view().slice0(n * R, (n + 1) * R), 0, cols));
  }
  return out;
}

}  // namespace llama4
