// CUDA kernels of the paged KV cache; contracts as cpu/paged_attention.h (validated by
// ops/attention.cpp; queued on ctx's stream, nothing read back to the host).
#pragma once
#include <cstdint>

#include "llama4/context.h"
#include "llama4/ops.h"

namespace llama4::cuda {

// Query heads per KV head the attention kernel keeps in registers (Llama 4: 40 / 8 = 5).
constexpr int64_t kAttentionMaxGroup = 8;
constexpr int64_t kAttentionMaxHeadDim = 256;

// Tokens whose slot is outside [0, num_pages * page_size) are skipped (the host cannot check
// device slots without a synchronisation; the engine builds them from its own bookkeeping).
void cache_write(const Context& ctx, const TensorView& k_cache, const TensorView& v_cache,
                 const TensorView& k, const TensorView& v, const TensorView& slots,
                 const ops::KVScales& scales = {});

// A query whose window needs a page the table lacks (past its width, -1, or not a page of the
// cache) gets NaN outputs instead of a host-side error (reading the table back would synchronise).
void paged_attention(const Context& ctx, const TensorView& out, const TensorView& q,
                     const TensorView& k_cache, const TensorView& v_cache,
                     const TensorView& page_table, const TensorView& query_seq,
                     const TensorView& query_pos, const ops::AttentionParams& params,
                     const ops::KVScales& scales = {});

}  // namespace llama4::cuda
