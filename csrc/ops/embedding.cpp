// Op entry of the early-fusion embedding: validates shapes, dtypes, devices, the token ids (on a
// CPU copy) and the placeholder count against the feature rows, then dispatches.
#include "cpu/embedding.h"
#include "cuda/embedding.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

void embedding_fused(const Context& ctx, const TensorView& out, const TensorView& table,
                     const TensorView& ids, const TensorView& image_features,
                     int64_t image_token_id, int64_t num_image_tokens) {
  constexpr const char* op = "embedding_fused";
  detail::check_activation(op, "table", table);
  detail::check_ndim(op, "table", table, 2);
  detail::check_dtype_in(op, "ids", ids, {DType::I32, DType::I64});
  detail::check_ndim(op, "ids", ids, 1);
  detail::check_same_dtype(op, "out", out, "table", table);
  detail::check_shape(op, "out", out, {ids.size(0), table.size(1)});
  detail::check_contiguous_out(op, "out", out);
  detail::check_same_device(op, "ids", ids, "table", table);
  detail::check_same_device(op, "out", out, "table", table);
  detail::check_context(op, ctx, "table", table);
  const bool has_features = image_features.data != nullptr || image_features.ndim > 0;
  const int64_t R = has_features ? image_features.size(0) : 0;
  if (has_features) {
    detail::check_same_dtype(op, "image_features", image_features, "table", table);
    detail::check_ndim(op, "image_features", image_features, 2);
    LLAMA4_CHECK_ARG(image_features.size(1) == table.size(1), op,
                     ": 'image_features' must have shape [R, ", table.size(1),
                     "] (the embedding width), got ", image_features.shape_str());
    detail::check_same_device(op, "image_features", image_features, "table", table);
  }
  LLAMA4_CHECK_ARG(num_image_tokens >= 0, op, ": 'num_image_tokens' must be >= 0, got ",
                   num_image_tokens);
  LLAMA4_CHECK_ARG(image_token_id >= 0 || num_image_tokens == 0, op,
                   ": 'num_image_tokens' is ", num_image_tokens, " but no image_token_id is set");
  LLAMA4_CHECK_ARG(num_image_tokens == R, op, ": the ids hold ", num_image_tokens,
                   " image placeholder tokens (id ", image_token_id, ") but 'image_features' has ",
                   R, " rows; each placeholder takes one feature row");
  const detail::ContiguousInput tc(ctx, table), ic(ctx, ids), fc(ctx, image_features);
  if (ids.device.is_cpu()) {  // verify the ids (range, placeholder count) once, here
    const int64_t V = table.size(0);
    int64_t count = 0;
    for (int64_t t = 0; t < ids.size(0); ++t) {
      const int64_t id = ids.dtype == DType::I64 ? ic.view().ptr<int64_t>()[t] : ic.view().ptr<int32_t>()[t];
      LLAMA4_CHECK_ARG(0 <= id && id < V, op, ": token id ", id, " at position ", t,
                       " is outside the vocabulary [0, ", V, ")");
      count += id == image_token_id;
    }
    LLAMA4_CHECK_ARG(count == num_image_tokens, op, ": 'num_image_tokens' says ",
                     num_image_tokens, " but the ids hold ", count,
                     " image placeholder tokens (id ", image_token_id, ")");
  }
  if (out.numel() == 0) return;
  switch (table.device.type) {
    case DeviceType::CPU: cpu::embedding_fused(out, tc, ic, fc, image_token_id); break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(cuda::embedding_fused(ctx, out, tc, ic, fc, image_token_id)); break;
  }
}

}  // namespace llama4::ops
