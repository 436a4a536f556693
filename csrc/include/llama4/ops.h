// The op entry points. Each validates its arguments once (shapes, dtypes, devices; messages name
// the argument and the expected vs actual value) and dispatches to the cpu:: or cuda:: kernel.
// Outputs are passed in (preallocated, contiguous); inputs may be non-contiguous views.
// Activation dtypes: float32, bfloat16, float16. Math is fp32; results round where the
// Hugging Face reference rounds (noted per op).
#pragma once
#include <vector>

#include "llama4/context.h"
#include "llama4/tensor.h"

namespace llama4::ops {

// ---- memory ----
// dst = src, same shape and dtype; any strides on one device; contiguous tensors across CPU<->CUDA.
void copy(const Context& ctx, const TensorView& dst, const TensorView& src);
// dst = src converted between float dtypes (f32/bf16/f16/fp8) with PyTorch's rounding
// (to fp8: saturating at +-448, see numeric.h).
void cast(const Context& ctx, const TensorView& dst, const TensorView& src);
// A contiguous tensor holding src (a copy; the same storage is not reused).
Tensor contiguous(const Context& ctx, const TensorView& src);
Tensor to_device(const Context& ctx, const TensorView& src, Device device);

// ---- norms, RoPE, activation ----
// out[..., D] = cast(x32 * rsqrt(mean(x32^2) + eps)) * weight   (weight [D], same dtype as x).
// With an undefined weight (data == nullptr) it is Llama 4's QK-norm: no weight multiply.
void rms_norm(const Context& ctx, const TensorView& out, const TensorView& x,
              const TensorView& weight, float eps);

// Llama 4 RoPE on adjacent pairs (x[2j], x[2j+1]) rotated by angle = float(pos) * inv_freq[j]:
// x: [T, H, d], positions: [T] int32/int64 (absolute), inv_freq: [d/2] float32; out like x.
void rope(const Context& ctx, const TensorView& out, const TensorView& x,
          const TensorView& positions, const TensorView& inv_freq);

// out[T, I] = silu(gate) * up, rounding after the SiLU and after the product (as HF does).
void silu_gate(const Context& ctx, const TensorView& out, const TensorView& gate,
               const TensorView& up);

// ---- FP8 e4m3 row-wise quantization (FBGEMM quantize_fp8_per_row semantics) ----
// amax = clamp(max|x[r,:]|, 1e-12, scale_ub if scale_ub > 0), inv = 448 / amax,
// q[r,:] = e4m3(clamp(x * inv, -448, 448)), scale[r] = 1 / inv.   x: [R, K] f32/bf16/f16.
// scale_ub: finite, >= 0 (0: no bound). A NaN in a row makes that row and its scale NaN.
void quantize_fp8_rowwise(const Context& ctx, const TensorView& q_out, const TensorView& scale_out,
                          const TensorView& x, float scale_ub);
// out[r, k] = float(q[r, k]) * scale[r], rounded to out's dtype.
void dequantize_fp8_rowwise(const Context& ctx, const TensorView& out, const TensorView& q,
                            const TensorView& scale);

// ---- paged attention (KV cache pages: see llama4/kv_cache.h) ----
// Cache layout: k_cache, v_cache [num_pages, page_size, KV, d], contiguous; a slot is
// page * page_size + offset. Page tables: [S, max_pages] int32, entry = physical page or -1.
//
// FP8 caches (k_cache/v_cache float8_e4m3fn) store each (token, kv head) row of d values as e4m3
// with one float32 scale, KVScales k/v [num_pages, page_size, KV] contiguous, written together:
//   amax = max(max|x|, 1e-12), inv = 448 / amax, q = e4m3(clamp(x * inv, -448, 448)), scale = 1 / inv
// (quantize_fp8_rowwise's rule, one row per token and head) and read as float(q) * scale in fp32.
struct KVScales {
  TensorView k, v;  // [num_pages, page_size, KV] float32; unset (ndim 0) for bf16/f16/f32 caches
  bool defined() const { return k.ndim > 0 || v.ndim > 0; }
};

// k_cache/v_cache[slot of token t] = k/v[t] for every token with slots[t] >= 0 (-1 = skip).
// k, v: [T, KV, d] in the cache's dtype, or any activation dtype for an FP8 cache (then quantized
// per token and head into `scales`); any strides (the last dim contiguous avoids a copy).
void cache_write(const Context& ctx, const TensorView& k_cache, const TensorView& v_cache,
                 const TensorView& k, const TensorView& v, const TensorView& slots,
                 const KVScales& scales = {});

// Which CUDA kernel runs paged_attention (the CPU has one kernel and ignores this): kAuto picks
// from the shapes (ops/attention_plan.h); kSplitKV is the per-query CUDA-core kernel (decode);
// kPrefillTiles the tensor-core kernel over tiles of consecutive queries (bf16 q and a bf16 or FP8
// cache, head_dim 64 or 128; ValueError when forced on other inputs).
enum class AttentionKernel : int { kAuto = 0, kSplitKV = 1, kPrefillTiles = 2 };

struct AttentionParams {
  float scale = 0.f;       // softmax scale, d^-0.5 for Llama 4
  int64_t chunk_size = 0;  // 0: global causal (keys [0, p]); > 0: chunked-local, [floor(p/C)*C, p]
  float attn_scale = 0.f;  // temperature tuning (NoPE layers); 0 = off
  float floor_scale = 8192.f;
  // Split each query's key window into this many parts reduced afterwards (flash-decoding), so
  // that few long sequences still occupy every core. 0 = heuristic; > 0 forces it (tests, tuning).
  int kv_splits = 0;
  AttentionKernel kernel = AttentionKernel::kAuto;
};

// out[t, h] = softmax_j(q'[t, h] . k[j, h/(H/KV)] * scale) @ v[j, h/(H/KV)] over the keys j of the
// window of query t (sequence query_seq[t], absolute position p = query_pos[t]), read through
// page_table[query_seq[t], j / page_size]. q' = q, or with attn_scale > 0,
// q' = round_to_q_dtype(q * (1 + attn_scale * log1p(floor((p + 1) / floor_scale)))) in fp32 (as
// transformers does it). Scores, softmax (max-subtracted) and the V sum are fp32; out is rounded
// once. q, out: [T, H, d]; query_seq, query_pos: [T] int32. Every page a window needs must be
// present (ValueError naming the query, sequence row and logical page otherwise). The caches have
// q's dtype, or are FP8 with their scales (K/V read as float(e4m3) * scale).
void paged_attention(const Context& ctx, const TensorView& out, const TensorView& q,
                     const TensorView& k_cache, const TensorView& v_cache,
                     const TensorView& page_table, const TensorView& query_seq,
                     const TensorView& query_pos, const AttentionParams& params,
                     const KVScales& scales = {});

}  // namespace llama4::ops

namespace llama4 {

// RoPE frequencies as transformers computes them (fp32): inv_freq[j] = 1 / theta^(2j/d), and for
// rope_type "llama3" the wavelength-dependent rescaling (no smoothing band when low == high).
struct RopeScaling {
  enum class Type { Default, Llama3 };
  Type type = Type::Default;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position_embeddings = 8192;
};
std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling);

}  // namespace llama4

namespace llama4::ops {

// ---- dense layers ----
// out[M, N] = x[M, K] . w[N, K]^T (nn.Linear layout), fp32 accumulation, one rounding to out.
// x and w share a dtype (float32 or bfloat16); out has x's dtype or float32. x may have a row
// stride (e.g. a column slice of a fused projection) but unit column stride.
void linear(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& w);

// How expert weights w [E, N, K] (grouped_linear's w; the MoE's moe.gate_up and moe.down) lie in
// memory -- the one rule the loader, the model's checks and the ops follow:
//   NK     contiguous: each expert nn.Linear's [N, K];
//   KN     each expert the transpose of a row-major [K, N], strides [s >= K N, 1, N]: Hugging
//          Face's fused experts [E, K, N] (x @ W) as the checkpoint stores them, viewed as
//          [E, N, K]; the CPU kernels read them in place (loading copies nothing);
//   Other  any other strides (not accepted).
enum class ExpertLayout { NK, KN, Other };
ExpertLayout expert_layout(const TensorView& w);

// The experts of a MoE layer in one call: rows [offsets[e], offsets[e + 1]) of out are the same
// rows of x . w[e]^T (each group as ops::linear computes it; KN experts sum in another order, see
// cpu/linear.h). x: [R, K] f32/bf16 contiguous; w: [E, N, K], x's dtype, NK (or KN on the CPU);
// offsets: [E + 1] int32, non-decreasing from 0 to at most R (checked on the CPU; on CUDA they stay
// on the device and are not read back); rows from offsets[E] on belong to no group and are not
// written (moe_localize's other ranks' choices); out: [R, N] contiguous, x's dtype.
void grouped_linear(const Context& ctx, const TensorView& out, const TensorView& x,
                    const TensorView& w, const TensorView& offsets);

// out[T, D] = table[ids[t], :]. ids: [T] int32/int64; an id outside [0, V) raises ValueError.
void embedding(const Context& ctx, const TensorView& out, const TensorView& table,
               const TensorView& ids);

// out = a + b, rounded once to out's dtype (the residual add). out may alias a.
void add(const Context& ctx, const TensorView& out, const TensorView& a, const TensorView& b);

// ---- early fusion (embedding with image features) ----
// The decoder input of a batch of sequences in one pass: out[t] = table[ids[t]], except where
// ids[t] == image_token_id, where out[t] = image_features[k] for the k-th such token of `ids`
// (row-major over the batch's tokens, as transformers' masked_scatter fills them).
// out: [T, D] like table; table: [V, D]; ids: [T] int32/int64; image_features: [R, D] like table
// (R may be 0; undefined = no features). num_image_tokens: the number of placeholders in `ids`,
// counted by the caller from its host copy of the ids (so a CUDA launch never waits for the
// device); it must equal R (ValueError otherwise), and on CPU it is also verified against ids.
// image_token_id < 0: no placeholder (plain embedding). An id outside [0, V) raises ValueError.
void embedding_fused(const Context& ctx, const TensorView& out, const TensorView& table,
                     const TensorView& ids, const TensorView& image_features,
                     int64_t image_token_id, int64_t num_image_tokens);

// ---- vision encoder ops (fp32 math; one rounding to the output dtype) ----
// LayerNorm over the last dim with weight and bias (nn.LayerNorm): biased variance, statistics in
// fp32 or better. x, out: [..., D]; weight, bias: [D], x's dtype.
void layer_norm(const Context& ctx, const TensorView& out, const TensorView& x,
                const TensorView& weight, const TensorView& bias, float eps);
// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (nn.GELU()). out like x; out may alias x.
void gelu(const Context& ctx, const TensorView& out, const TensorView& x);
// out[..., N] = x[..., N] + bias[N], rounded once to out's dtype. x has out's dtype or float32 (an
// unrounded ops::linear output: with it, linear + add_bias rounds once, as nn.Linear does).
// bias: [N] in out's dtype. out may alias x when they share a dtype.
void add_bias(const Context& ctx, const TensorView& out, const TensorView& x,
              const TensorView& bias);
// Interleaved-pair rotation by a per-position angle table (the vision tower's 2D RoPE):
// out[b, n, h, 2j:2j+2] = rotate(x[b, n, h, 2j:2j+2], cos[n, j], sin[n, j]) in fp32
// (a c - b s, a s + b c, as a complex multiply). x: [B, N, H, d] (d even); cos, sin: [N, d/2]
// float32; out like x, contiguous.
void rope_table(const Context& ctx, const TensorView& out, const TensorView& x,
                const TensorView& cos, const TensorView& sin);
// Bidirectional (unmasked) multi-head attention of independent batch rows:
// out[b, n, h] = softmax_m(q[b, n, h] . k[b, m, h] * scale) @ v[b, m, h], fp32 scores, softmax and
// sums, one rounding. q, k, v: [B, N, H, d] (any strides); out: [B, N, H, d] contiguous.
void attention_dense(const Context& ctx, const TensorView& out, const TensorView& q,
                     const TensorView& k, const TensorView& v, float scale);
// Pixel shuffle of a square token grid by an integer factor f (transformers' pixel_shuffle with
// ratio 1/f): x: [B, S*S, C] (row-major grid) -> out: [B, (S/f)^2, C*f*f] with
// out[b, i*(S/f) + j, (n*f + m)*C : +C] = x[b, (f*i + n)*S + f*j + m]. x may be strided.
void pixel_shuffle(const Context& ctx, const TensorView& out, const TensorView& x, int64_t factor);
// Non-overlapping p x p patches (nn.Unfold(kernel=p, stride=p), then permute), converted to out's
// dtype: pixels [B, C, H, W] -> out [B, (H/p)*(W/p), C*p*p], patches row-major, each flattened in
// (channel, ky, kx) order.
void patchify(const Context& ctx, const TensorView& out, const TensorView& pixels, int64_t patch);

// ---- MoE routing (Llama 4: top-k on logits, sigmoid score scales the expert INPUT) ----
// topk_ids[T, k] int32 = indices of the k largest router logits per token (ties: lower index);
// topk_scores[T, k] = sigmoid(logit) computed in fp32, rounded to topk_scores' dtype (any
// activation dtype; it need not be the logits').
void moe_route(const Context& ctx, const TensorView& topk_ids, const TensorView& topk_scores,
               const TensorView& logits);

// Expert parallelism: a rank that holds experts [first, first + count) keeps the choices of its own
// experts, renumbered from 0, and sends every other choice to the extra group `count`, whose rows
// no grouped GEMM computes (the rank that owns that expert adds its output). topk_ids [T, k] int32,
// in place; ids must lie in [0, E) of the full router (not checked on CUDA).
void moe_localize(const Context& ctx, const TensorView& topk_ids, int64_t first, int64_t count);

// Groups the (token, choice) pairs by expert (stable in token order) and writes the expert inputs:
// x_perm[r] = round(x[t] * score) for the r-th pair; perm_token[r] = t; perm_slot[t*k + j] = r;
// expert_offsets[E + 1] int32: expert e owns rows [offsets[e], offsets[e + 1]).
// x_perm: [T*k, D] like x; perm_token/perm_slot: [T*k] int32; expert_offsets: [E+1] int32.
void moe_permute(const Context& ctx, const TensorView& x_perm, const TensorView& perm_token,
                 const TensorView& perm_slot, const TensorView& expert_offsets, const TensorView& x,
                 const TensorView& topk_ids, const TensorView& topk_scores);

// out[t] = round(shared[t] + round(sum_j y_perm[perm_slot[t*k + j]])): the routed outputs summed
// per token (one rounding, as transformers' sum over experts), then added to the shared expert.
// out may alias shared.
void moe_unpermute(const Context& ctx, const TensorView& out, const TensorView& y_perm,
                   const TensorView& perm_slot, const TensorView& shared);

}  // namespace llama4::ops

// ---- context-free forms (transitional) ----
// For callers that do not pass a context yet (code being ported to the execution context): each
// runs the op in Context::on(device of its GPU-side / first tensor), i.e. the CPU, or the GPU's
// per-thread default stream. New code passes its context; these go once every caller does.
namespace llama4::ops {
namespace no_context_detail {
inline Context on(const TensorView& t) { return Context::on(t.device); }
inline Context on_gpu_side(const TensorView& a, const TensorView& b) {
  return Context::on(a.device.is_cuda() ? a.device : b.device);
}
}  // namespace no_context_detail

inline void copy(const TensorView& dst, const TensorView& src) {
  copy(no_context_detail::on_gpu_side(src, dst), dst, src);
}
inline void cast(const TensorView& dst, const TensorView& src) {
  cast(no_context_detail::on(src), dst, src);
}
inline Tensor contiguous(const TensorView& src) {
  return contiguous(no_context_detail::on(src), src);
}
inline Tensor to_device(const TensorView& src, Device device) {
  return to_device(Context::on(src.device.is_cuda() ? src.device : device), src, device);
}
inline void rms_norm(const TensorView& out, const TensorView& x, const TensorView& weight,
                     float eps) {
  rms_norm(no_context_detail::on(x), out, x, weight, eps);
}
inline void rope(const TensorView& out, const TensorView& x, const TensorView& positions,
                 const TensorView& inv_freq) {
  rope(no_context_detail::on(x), out, x, positions, inv_freq);
}
inline void silu_gate(const TensorView& out, const TensorView& gate, const TensorView& up) {
  silu_gate(no_context_detail::on(gate), out, gate, up);
}
inline void cache_write(const TensorView& k_cache, const TensorView& v_cache, const TensorView& k,
                        const TensorView& v, const TensorView& slots, const KVScales& scales = {}) {
  cache_write(no_context_detail::on(k_cache), k_cache, v_cache, k, v, slots, scales);
}
inline void paged_attention(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                            const TensorView& v_cache, const TensorView& page_table,
                            const TensorView& query_seq, const TensorView& query_pos,
                            const AttentionParams& params, const KVScales& scales = {}) {
  paged_attention(no_context_detail::on(q), out, q, k_cache, v_cache, page_table, query_seq,
                  query_pos, params, scales);
}
inline void linear(const TensorView& out, const TensorView& x, const TensorView& w) {
  linear(no_context_detail::on(x), out, x, w);
}
inline void embedding(const TensorView& out, const TensorView& table, const TensorView& ids) {
  embedding(no_context_detail::on(table), out, table, ids);
}
inline void add(const TensorView& out, const TensorView& a, const TensorView& b) {
  add(no_context_detail::on(a), out, a, b);
}
inline void embedding_fused(const TensorView& out, const TensorView& table, const TensorView& ids,
                            const TensorView& image_features, int64_t image_token_id,
                            int64_t num_image_tokens) {
  embedding_fused(no_context_detail::on(table), out, table, ids, image_features, image_token_id,
                  num_image_tokens);
}
inline void moe_route(const TensorView& topk_ids, const TensorView& topk_scores,
                      const TensorView& logits) {
  moe_route(no_context_detail::on(logits), topk_ids, topk_scores, logits);
}
inline void moe_permute(const TensorView& x_perm, const TensorView& perm_token,
                        const TensorView& perm_slot, const TensorView& expert_offsets,
                        const TensorView& x, const TensorView& topk_ids,
                        const TensorView& topk_scores) {
  moe_permute(no_context_detail::on(x), x_perm, perm_token, perm_slot, expert_offsets, x, topk_ids,
              topk_scores);
}
inline void moe_unpermute(const TensorView& out, const TensorView& y_perm,
                          const TensorView& perm_slot, const TensorView& shared) {
  moe_unpermute(no_context_detail::on(shared), out, y_perm, perm_slot, shared);
}
}  // namespace llama4::ops
