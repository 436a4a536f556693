// CPU kernels of the paged KV cache: writing new K/V rows into their page slots, and attention of
// queries over K/V read through page tables (GQA, chunked-local or global causal windows,
// Llama 4 temperature tuning). Contracts as in llama4/ops.h; ops/attention.cpp has validated:
//   k_cache, v_cache [num_pages, page_size, KV, d] contiguous, same dtype as q/k/v/out, or
//   float8_e4m3fn with float32 scales [num_pages, page_size, KV] (one per token and head);
//   q, k, v: last dim contiguous (other strides arbitrary); out [T, H, d] contiguous;
//   slots, page_table, query_seq, query_pos contiguous int32; query_seq in [0, S); query_pos >= 0.
// Slot values and page-table entries are data, checked here as they are read.
#pragma once
#include <cstdint>

#include "llama4/ops.h"

namespace llama4::cpu {

using ops::AttentionParams;

// Slots >= num_pages * page_size raise ValueError (checked before anything is written).
// FP8 caches: each (token, head) row quantized with its own scale (llama4/ops.h KVScales).
void cache_write(const TensorView& k_cache, const TensorView& v_cache, const TensorView& k,
                 const TensorView& v, const TensorView& slots, const ops::KVScales& scales = {});

// The first (lowest query index) bad page reference a window needed: the logical page lies past
// the page table's width, or its entry is -1 or not a page of the cache. query < 0: none.
struct PageFault {
  int64_t query = -1;
  int64_t logical_page = -1;
  int64_t entry = 0;  // the table entry (or -1 when the page lies past the table)
};

PageFault paged_attention(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                          const TensorView& v_cache, const TensorView& page_table,
                          const TensorView& query_seq, const TensorView& query_pos,
                          const AttentionParams& params, const ops::KVScales& scales = {});

}  // namespace llama4::cpu
