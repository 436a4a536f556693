// CPU MoE routing. Rounding follows transformers' Llama4TextMoe: logits in the model dtype,
// sigmoid in fp32 rounded back, expert input x * score rounded, expert outputs summed once.
#include "cpu/moe_routing.h"

#include <cmath>
#include <vector>

#include "cpu/elem.h"
#include "llama4/mathfn.h"

namespace llama4::cpu {

namespace {

// Scores are written in topk_scores' dtype (it may differ from the logits': the engine routes on
// fp32 logits and scales bf16 activations).
void store_score(const TensorView& scores, int64_t i, float v) {
  switch (scores.dtype) {
    case DType::F32: scores.ptr<float>()[i] = v; break;
    case DType::BF16: scores.ptr<bf16>()[i].bits = f32_to_bf16(v); break;
    case DType::F16: scores.ptr<f16>()[i].bits = f32_to_f16(v); break;
    default: break;
  }
}

template <typename T>
void route_impl(const TensorView& topk_ids, const TensorView& topk_scores, const TensorView& logits) {
  using E = Elem<T>;
  const int64_t Tn = logits.size(0), En = logits.size(1), k = topk_ids.size(1);
  const T* lp = logits.ptr<T>();
  int32_t* ids = topk_ids.ptr<int32_t>();
#pragma omp parallel for schedule(static) if (Tn * En > 65536)
  for (int64_t t = 0; t < Tn; ++t) {
    std::vector<bool> taken(size_t(En), false);
    for (int64_t j = 0; j < k; ++j) {
      int64_t best = -1;
      float best_v = 0.f;
      for (int64_t e = 0; e < En; ++e) {
        const float v = E::load(lp, t * En + e);
        // The largest logit, the lower index on ties; a NaN only when every candidate is NaN.
        // This is a total order, so the CUDA kernel's tree reduction picks the same expert.
        if (!taken[size_t(e)] && (best < 0 || v > best_v || (best_v != best_v && v == v))) {
          best = e;
          best_v = v;
        }
      }
      taken[size_t(best)] = true;
      ids[t * k + j] = int32_t(best);
      // exp_f32 (llama4/mathfn.h), not libm: the CUDA router computes the same bits.
      store_score(topk_scores, t * k + j, 1.0f / (1.0f + exp_f32(-best_v)));
    }
  }
}

template <typename T>
void permute_impl(const TensorView& x_perm, const TensorView& perm_token, const TensorView& perm_slot,
                  const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_ids,
                  const TensorView& topk_scores) {
  using E = Elem<T>;
  const int64_t Tn = x.size(0), D = x.size(1), k = topk_ids.size(1);
  const int64_t En = expert_offsets.size(0) - 1;
  const int32_t* ids = topk_ids.ptr<int32_t>();
  int32_t* offsets = expert_offsets.ptr<int32_t>();
  // Counting sort of the (token, choice) pairs by expert, stable in token order.
  std::vector<int32_t> count(size_t(En) + 1, 0);
  for (int64_t i = 0; i < Tn * k; ++i) ++count[size_t(ids[i]) + 1];
  for (int64_t e = 0; e < En; ++e) count[size_t(e) + 1] += count[size_t(e)];
  for (int64_t e = 0; e <= En; ++e) offsets[e] = count[size_t(e)];
  int32_t* ptok = perm_token.ptr<int32_t>();
  int32_t* pslot = perm_slot.ptr<int32_t>();
  for (int64_t i = 0; i < Tn * k; ++i) {
    const int32_t r = count[size_t(ids[i])]++;
    ptok[r] = int32_t(i / k);
    pslot[i] = r;
  }
  const T* xp = x.ptr<T>();
  const T* sp = topk_scores.ptr<T>();
  T* out = x_perm.ptr<T>();
#pragma omp parallel for schedule(static) if (Tn * k * D > 65536)
  for (int64_t i = 0; i < Tn * k; ++i) {
    const int64_t t = i / k, r = pslot[i];
    const float s = E::load(sp, i);
    for (int64_t d = 0; d < D; ++d) E::store(out, r * D + d, E::load(xp, t * D + d) * s);
  }
}

template <typename T>
void unpermute_impl(const TensorView& out, const TensorView& y_perm, const TensorView& perm_slot,
                    const TensorView& shared) {
  using E = Elem<T>;
  const int64_t Tn = out.size(0), D = out.size(1), k = perm_slot.size(0) / (Tn ? Tn : 1);
  const int32_t* pslot = perm_slot.ptr<int32_t>();
  const T* yp = y_perm.ptr<T>();
  const T* sh = shared.ptr<T>();
  T* op = out.ptr<T>();
#pragma omp parallel for schedule(static) if (Tn * D > 65536)
  for (int64_t t = 0; t < Tn; ++t) {
    for (int64_t d = 0; d < D; ++d) {
      float routed = 0.f;
      for (int64_t j = 0; j < k; ++j) routed += E::load(yp, int64_t(pslot[t * k + j]) * D + d);
      E::store(op, t * D + d, E::load(sh, t * D + d) + E::round(routed));
    }
  }
}

}  // namespace

void moe_localize(const TensorView& topk_ids, int64_t first, int64_t count) {
  int32_t* ids = topk_ids.ptr<int32_t>();
  for (int64_t i = 0; i < topk_ids.numel(); ++i) {
    const int64_t local = int64_t(ids[i]) - first;
    ids[i] = int32_t(local >= 0 && local < count ? local : count);
  }
}

void moe_route(const TensorView& topk_ids, const TensorView& topk_scores, const TensorView& logits) {
  LLAMA4_DISPATCH_ACT(logits.dtype, "moe_route", route_impl, topk_ids, topk_scores, logits);
}

void moe_permute(const TensorView& x_perm, const TensorView& perm_token, const TensorView& perm_slot,
                 const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_ids,
                 const TensorView& topk_scores) {
  LLAMA4_DISPATCH_ACT(x.dtype, "moe_permute", permute_impl, x_perm, perm_token, perm_slot,
                      expert_offsets, x, topk_ids, topk_scores);
}

void moe_unpermute(const TensorView& out, const TensorView& y_perm, const TensorView& perm_slot,
                   const TensorView& shared) {
  LLAMA4_DISPATCH_ACT(out.dtype, "moe_unpermute", unpermute_impl, out, y_perm, perm_slot, shared);
}

}  // namespace llama4::cpu
