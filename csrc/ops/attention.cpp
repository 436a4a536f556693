// Op entries for the paged KV cache: cache_write (scatter new K/V rows into page slots) and
// paged_attention (GQA attention through page tables, chunked-local or global causal windows,
// temperature tuning). Shapes: caches [num_pages, page_size, KV, d]; k, v [T, KV, d];
// q, out [T, H, d]; slots, query_seq, query_pos [T] int32; page_table [S, max_pages] int32.
// On CUDA the slots, page tables and positions are device data: they are not read on the host
// (no synchronisation), see cuda/paged_attention.h for what a bad entry does there. FP8 caches
// (float8_e4m3fn) carry per-(token, head) scales (llama4/ops.h KVScales).
#include <cmath>
#include <cstdint>

#include "cpu/paged_attention.h"
#include "cuda/paged_attention.h"
#include "cuda/paged_prefill_attention.h"
#include "ops/attention_plan.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

namespace {

void check_cache_pair(const char* op, const TensorView& k_cache, const TensorView& v_cache) {
  detail::check_dtype_in(op, "k_cache", k_cache, {DType::F32, DType::BF16, DType::F16, DType::F8E4M3});
  detail::check_ndim(op, "k_cache", k_cache, 4);
  detail::check_same_dtype(op, "v_cache", v_cache, "k_cache", k_cache);
  detail::check_same_device(op, "v_cache", v_cache, "k_cache", k_cache);
  detail::check_shape(op, "v_cache", v_cache, k_cache.sizes());
  LLAMA4_CHECK_ARG(k_cache.is_contiguous(), op, ": 'k_cache' must be contiguous [num_pages, page_size, KV, d]");
  LLAMA4_CHECK_ARG(v_cache.is_contiguous(), op, ": 'v_cache' must be contiguous [num_pages, page_size, KV, d]");
}

// FP8 caches come with their scales [num_pages, page_size, KV] float32; other caches without.
void check_scales(const char* op, const TensorView& k_cache, const ops::KVScales& scales) {
  if (k_cache.dtype != DType::F8E4M3) {
    LLAMA4_CHECK_ARG(!scales.defined(), op, ": scales are for float8_e4m3fn caches; 'k_cache' is ",
                     dtype_name(k_cache.dtype));
    return;
  }
  const Shape want{k_cache.size(0), k_cache.size(1), k_cache.size(2)};
  for (const auto& [name, t] : {std::pair<const char*, const TensorView&>{"k_scale", scales.k},
                                std::pair<const char*, const TensorView&>{"v_scale", scales.v}}) {
    LLAMA4_CHECK_ARG(t.ndim > 0, op, ": a float8_e4m3fn cache needs '", name,
                     "' [num_pages, page_size, KV] float32 (one scale per token and head)");
    detail::check_dtype(op, name, t, DType::F32);
    detail::check_shape(op, name, t, want);
    detail::check_same_device(op, name, t, "k_cache", k_cache);
    LLAMA4_CHECK_ARG(t.is_contiguous(), op, ": '", name, "' must be contiguous");
  }
}

void check_index(const char* op, const char* name, const TensorView& t, int64_t n,
                 const TensorView& ref) {
  detail::check_dtype(op, name, t, DType::I32);
  detail::check_shape(op, name, t, {n});
  detail::check_same_device(op, name, t, "q", ref);
}

void check_params(const AttentionParams& p) {
  constexpr const char* op = "paged_attention";
  LLAMA4_CHECK_ARG(std::isfinite(p.scale) && p.scale > 0.f, op, ": 'scale' must be a finite value > 0, got ",
                   p.scale);
  LLAMA4_CHECK_ARG(p.chunk_size >= 0, op, ": 'chunk_size' must be >= 0 (0 = global), got ", p.chunk_size);
  LLAMA4_CHECK_ARG(std::isfinite(p.attn_scale) && p.attn_scale >= 0.f, op,
                   ": 'attn_scale' must be >= 0 (0 = no temperature tuning), got ", p.attn_scale);
  LLAMA4_CHECK_ARG(p.attn_scale == 0.f || (std::isfinite(p.floor_scale) && p.floor_scale > 0.f), op,
                   ": 'floor_scale' must be > 0 when attn_scale > 0, got ", p.floor_scale);
  LLAMA4_CHECK_ARG(p.kv_splits >= 0, op, ": 'kv_splits' must be >= 0 (0 = heuristic), got ", p.kv_splits);
  LLAMA4_CHECK_ARG(p.kernel == AttentionKernel::kAuto || p.kernel == AttentionKernel::kSplitKV ||
                       p.kernel == AttentionKernel::kPrefillTiles,
                   op, ": 'kernel' must be auto (0), split_kv (1) or prefill (2), got ", int(p.kernel));
}

}  // namespace

void cache_write(const Context& ctx, const TensorView& k_cache, const TensorView& v_cache,
                 const TensorView& k, const TensorView& v, const TensorView& slots,
                 const KVScales& scales) {
  constexpr const char* op = "cache_write";
  check_cache_pair(op, k_cache, v_cache);
  check_scales(op, k_cache, scales);
  detail::check_ndim(op, "k", k, 3);
  const int64_t T = k.size(0);
  detail::check_shape(op, "k", k, {T, k_cache.size(2), k_cache.size(3)});
  detail::check_shape(op, "v", v, k.sizes());
  if (k_cache.dtype == DType::F8E4M3) {  // quantized here, from any activation dtype
    detail::check_activation(op, "k", k);
  } else {
    detail::check_same_dtype(op, "k", k, "k_cache", k_cache);
  }
  detail::check_same_dtype(op, "v", v, "k", k);
  detail::check_dtype(op, "slots", slots, DType::I32);
  detail::check_shape(op, "slots", slots, {T});
  detail::check_same_device(op, "k", k, "k_cache", k_cache);
  detail::check_same_device(op, "v", v, "k_cache", k_cache);
  detail::check_same_device(op, "slots", slots, "k_cache", k_cache);
  detail::check_context(op, ctx, "k_cache", k_cache);
  if (T == 0) return;
  switch (k_cache.device.type) {
    case DeviceType::CPU: {
      const detail::LastDimContiguousInput kr(ctx, k), vr(ctx, v);
      const detail::ContiguousInput sc(ctx, slots);
      cpu::cache_write(k_cache, v_cache, kr, vr, sc, scales);
      break;
    }
    case DeviceType::CUDA: {
      const detail::LastDimContiguousInput kr(ctx, k), vr(ctx, v);
      const detail::ContiguousInput sc(ctx, slots);
      LLAMA4_CUDA_CALL(cuda::cache_write(ctx, k_cache, v_cache, kr, vr, sc, scales));
      break;
    }
  }
}

void paged_attention(const Context& ctx, const TensorView& out, const TensorView& q,
                     const TensorView& k_cache, const TensorView& v_cache,
                     const TensorView& page_table, const TensorView& query_seq,
                     const TensorView& query_pos, const AttentionParams& params, const KVScales& scales) {
  constexpr const char* op = "paged_attention";
  detail::check_activation(op, "q", q);
  detail::check_ndim(op, "q", q, 3);
  const int64_t T = q.size(0), H = q.size(1), d = q.size(2);
  check_cache_pair(op, k_cache, v_cache);
  check_scales(op, k_cache, scales);
  if (k_cache.dtype != DType::F8E4M3) detail::check_same_dtype(op, "k_cache", k_cache, "q", q);
  detail::check_same_device(op, "k_cache", k_cache, "q", q);
  const int64_t KV = k_cache.size(2);
  LLAMA4_CHECK_ARG(k_cache.size(3) == d, op, ": head_dim of 'k_cache' (", k_cache.size(3),
                   ") must equal head_dim of 'q' (", d, ")");
  LLAMA4_CHECK_ARG(KV > 0 && H % KV == 0, op, ": the ", H, " query heads of 'q' must be a multiple of the ",
                   KV, " kv heads of 'k_cache' (GQA)");
  detail::check_same_dtype(op, "out", out, "q", q);
  detail::check_same_device(op, "out", out, "q", q);
  detail::check_context(op, ctx, "q", q);
  detail::check_shape(op, "out", out, q.sizes());
  detail::check_contiguous_out(op, "out", out);
  detail::check_dtype(op, "page_table", page_table, DType::I32);
  detail::check_ndim(op, "page_table", page_table, 2);
  detail::check_same_device(op, "page_table", page_table, "q", q);
  check_index(op, "query_seq", query_seq, T, q);
  check_index(op, "query_pos", query_pos, T, q);
  check_params(params);
  if (T == 0 || H == 0) return;
  const detail::LastDimContiguousInput qr(ctx, q);
  const detail::ContiguousInput pt(ctx, page_table), qs(ctx, query_seq), qp(ctx, query_pos);
  if (q.device.is_cuda()) {
    AttentionShape shape;
    shape.T = T, shape.S = page_table.size(0), shape.H = H, shape.KV = KV, shape.d = d;
    shape.page_size = k_cache.size(1), shape.table_width = page_table.size(1), shape.chunk = params.chunk_size;
    shape.q_dtype = q.dtype, shape.cache_dtype = k_cache.dtype, shape.kv_splits = params.kv_splits;
    shape.aligned = reinterpret_cast<uintptr_t>(k_cache.data) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(v_cache.data) % 16 == 0;
    if (choose_attention_kernel(shape, params.kernel) == AttentionKernel::kPrefillTiles) {
      LLAMA4_CUDA_CALL(cuda::paged_prefill_attention(ctx, out, qr, k_cache, v_cache, pt, qs, qp, params, scales));
    } else {
      LLAMA4_CUDA_CALL(cuda::paged_attention(ctx, out, qr, k_cache, v_cache, pt, qs, qp, params, scales));
    }
    return;
  }
  const int64_t S = page_table.size(0);
  const int32_t* seqp = qs.view().ptr<int32_t>();
  const int32_t* posp = qp.view().ptr<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    LLAMA4_CHECK_ARG(seqp[t] >= 0 && seqp[t] < S, op, ": 'query_seq[", t, "]' = ", seqp[t],
                     " is not a row of 'page_table' (", S, " rows)");
    LLAMA4_CHECK_ARG(posp[t] >= 0, op, ": 'query_pos[", t, "]' = ", posp[t], " must be >= 0");
  }
  const cpu::PageFault f = cpu::paged_attention(out, qr, k_cache, v_cache, pt, qs, qp, params, scales);
  if (f.query < 0) return;
  const int64_t row = seqp[f.query], P = k_cache.size(1);
  const std::string where = detail::concat(op, ": query ", f.query, " (sequence row ", row, ", position ",
                                           posp[f.query], ") needs logical page ", f.logical_page, " (keys [",
                                           f.logical_page * P, ", ", f.logical_page * P + P - 1, "]), but ");
  if (f.logical_page >= page_table.size(1))
    throw ValueError(where + detail::concat("'page_table' has only ", page_table.size(1), " columns"));
  if (f.entry < 0)
    throw ValueError(where + detail::concat("page_table[", row, ", ", f.logical_page,
                                            "] = -1 (never reserved, or already freed)"));
  throw ValueError(where + detail::concat("page_table[", row, ", ", f.logical_page, "] = ", f.entry,
                                          " is not a page of the cache (", k_cache.size(0), " pages)"));
}

}  // namespace llama4::ops
