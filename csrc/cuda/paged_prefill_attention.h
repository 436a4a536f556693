// The tensor-core paged attention kernel for prefill (tiles of consecutive queries of one
// sequence); contract as cuda::paged_attention (cuda/paged_attention.h), for the inputs that
// ops/attention_plan.h's prefill_unsupported_reason accepts: bf16 q/out, a bf16 or FP8 e4m3 cache,
// head_dim 64 or 128, at most 64 query heads per KV head, 16-byte aligned caches. Queued on ctx's
// stream; nothing is read back to the host (the tiles are planned on the device).
#pragma once

#include "llama4/context.h"
#include "llama4/ops.h"

namespace llama4::cuda {

// A query whose window needs a page the table lacks (past its width, -1, or not a page of the
// cache), or whose query_seq is not a row of the table, gets NaN outputs.
void paged_prefill_attention(const Context& ctx, const TensorView& out, const TensorView& q,
                             const TensorView& k_cache, const TensorView& v_cache,
                             const TensorView& page_table, const TensorView& query_seq,
                             const TensorView& query_pos, const ops::AttentionParams& params,
                             const ops::KVScales& scales = {});

}  // namespace llama4::cuda
