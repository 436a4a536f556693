// CPU early-fusion embedding: one pass over the tokens writes each decoder input row, either the
// token's embedding row or the next image-feature row. The feature row of each placeholder is its
// rank among the placeholders (an exclusive prefix count), computed serially first (T ints) so the
// row copies can run in parallel.
#include "cpu/embedding.h"

#include <cstring>
#include <vector>

namespace llama4::cpu {

void embedding_fused(const TensorView& out, const TensorView& table, const TensorView& ids,
                     const TensorView& image_features, int64_t image_token_id) {
  const int64_t T = ids.size(0), D = table.size(1);
  const size_t row_bytes = size_t(D) * element_size(table.dtype);
  const bool ids64 = ids.dtype == DType::I64;
  auto id_at = [&](int64_t t) { return ids64 ? ids.ptr<int64_t>()[t] : int64_t(ids.ptr<int32_t>()[t]); };
  std::vector<int64_t> feature_row(size_t(T), -1);
  int64_t next = 0;
  for (int64_t t = 0; t < T; ++t)
    if (id_at(t) == image_token_id) feature_row[size_t(t)] = next++;
  const char* tp = static_cast<const char*>(table.data);
  const char* fp = static_cast<const char*>(image_features.data);
  char* op = static_cast<char*>(out.data);
#pragma omp parallel for schedule(static) if (T * D > 65536)
  for (int64_t t = 0; t < T; ++t) {
    const int64_t r = feature_row[size_t(t)];
    const char* src = r >= 0 ? fp + r * int64_t(row_bytes) : tp + id_at(t) * int64_t(row_bytes);
    std::memcpy(op + t * int64_t(row_bytes), src, row_bytes);
  }
}

}  // namespace llama4::cpu
