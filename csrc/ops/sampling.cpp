// Op entry of the sampler (llama4/sampling.h): checks the outputs, the logits, every row's
// parameters and the penalty CSR, then dispatches to cpu::sample or cuda::sample.
#include <algorithm>
#include <string>

#include "core/sampling_fields.h"
#include "cpu/sampling.h"
#include "cuda/sampling.h"
#include "llama4/sampling.h"
#include "ops/checks.h"
#include "ops/dispatch.h"

namespace llama4::ops {

namespace {

constexpr const char* kOp = "sample";

bool defined(const TensorView& t) { return t.data != nullptr || t.ndim > 0; }

void check_out(const char* name, const TensorView& t, DType dtype, const Shape& shape,
               const TensorView& logits) {
  detail::check_dtype(kOp, name, t, dtype);
  detail::check_shape(kOp, name, t, shape);
  detail::check_contiguous_out(kOp, name, t);
  detail::check_same_device(kOp, name, t, "logits", logits);
}

void check_rows(const SamplerBatch& batch, int64_t V) {
  for (size_t r = 0; r < batch.rows.size(); ++r) {
    const SamplerRow& row = batch.rows[r];
    const std::string who = detail::concat(kOp, ": row ", r);
    detail::check_sampling_fields(who, {row.temperature, row.top_k, row.top_p, row.min_p,
                                        row.repetition_penalty, row.presence_penalty,
                                        row.frequency_penalty, row.logprobs});
    LLAMA4_CHECK_ARG(row.sample_index >= 0, who, ": 'sample_index' must be >= 0, got ", row.sample_index);
    LLAMA4_CHECK_ARG(row.token_index >= 0, who, ": 'token_index' must be >= 0, got ", row.token_index);
  }
}

// CSR structure: offsets rise from 0 to nnz; within a row, ids strictly increase inside [0, V).
void check_penalties(const SamplerBatch& b, int64_t V) {
  const size_t B = b.rows.size(), nnz = b.penalty_tokens.size();
  LLAMA4_CHECK_ARG(b.penalty_offsets.size() == B + 1, kOp, ": 'penalty_offsets' must have B + 1 = ",
                   B + 1, " entries, got ", b.penalty_offsets.size());
  LLAMA4_CHECK_ARG(b.penalty_counts.size() == nnz && b.penalty_in_prompt.size() == nnz, kOp,
                   ": 'penalty_counts' and 'penalty_in_prompt' must have as many entries as "
                   "'penalty_tokens' (", nnz, "), got ", b.penalty_counts.size(), " and ",
                   b.penalty_in_prompt.size());
  LLAMA4_CHECK_ARG(b.penalty_offsets[0] == 0 && size_t(b.penalty_offsets[B]) == nnz, kOp,
                   ": 'penalty_offsets' must run from 0 to ", nnz, ", got ", b.penalty_offsets[0],
                   " to ", b.penalty_offsets[B]);
  // Every offset in [0, nnz] before any entry is read.
  for (size_t r = 0; r < B; ++r)
    LLAMA4_CHECK_ARG(b.penalty_offsets[r] <= b.penalty_offsets[r + 1], kOp,
                     ": 'penalty_offsets' must not decrease (row ", r, ": ", b.penalty_offsets[r],
                     " > ", b.penalty_offsets[r + 1], ")");
  for (size_t r = 0; r < B; ++r) {
    const int32_t p0 = b.penalty_offsets[r], p1 = b.penalty_offsets[r + 1];
    for (int32_t j = p0; j < p1; ++j) {
      const int32_t t = b.penalty_tokens[size_t(j)];
      LLAMA4_CHECK_ARG(t >= 0 && t < V, kOp, ": row ", r, ": penalty token ", t,
                       " outside the vocabulary [0, ", V, ")");
      LLAMA4_CHECK_ARG(j == p0 || b.penalty_tokens[size_t(j) - 1] < t, kOp, ": row ", r,
                       ": 'penalty_tokens' must strictly increase within a row (", t, " after ",
                       j == p0 ? 0 : b.penalty_tokens[size_t(j) - 1], ")");
      LLAMA4_CHECK_ARG(b.penalty_counts[size_t(j)] >= 0, kOp, ": row ", r, ": penalty count of token ",
                       t, " must be >= 0, got ", b.penalty_counts[size_t(j)]);
    }
  }
}

}  // namespace

void sample(const TensorView& tokens, const TensorView& logprobs, const TensorView& top_ids,
            const TensorView& top_logprobs, const TensorView& status, const TensorView& logits,
            const SamplerBatch& batch, const TensorView& workspace) {
  detail::check_dtype(kOp, "logits", logits, DType::F32);
  detail::check_ndim(kOp, "logits", logits, 2);
  const int64_t B = logits.size(0), V = logits.size(1);
  LLAMA4_CHECK_ARG(V >= 1 && V <= (int64_t(1) << 31) - 1, kOp, ": the vocabulary (logits' last dim) "
                   "must be in [1, 2^31), got ", V);
  LLAMA4_CHECK_ARG(batch.size() == B, kOp, ": the batch has ", batch.size(), " rows but 'logits' has ",
                   B, " (shape ", logits.shape_str(), ")");
  check_out("tokens", tokens, DType::I32, {B}, logits);
  check_out("status", status, DType::I32, {B}, logits);
  int32_t most = -1;
  for (const SamplerRow& row : batch.rows) most = std::max(most, row.logprobs);
  if (defined(logprobs)) check_out("logprobs", logprobs, DType::F32, {B}, logits);
  else
    LLAMA4_CHECK_ARG(most < 0, kOp, ": a row asks for logprobs but 'logprobs' is undefined");
  LLAMA4_CHECK_ARG(defined(top_ids) == defined(top_logprobs), kOp,
                   ": 'top_ids' and 'top_logprobs' must both be given or both undefined");
  if (defined(top_ids)) {
    detail::check_ndim(kOp, "top_ids", top_ids, 2);
    const int64_t N = top_ids.size(1);
    LLAMA4_CHECK_ARG(N >= most, kOp, ": 'top_ids' has room for ", N, " logprobs per row but a row asks for ",
                     most);
    check_out("top_ids", top_ids, DType::I32, {B, N}, logits);
    check_out("top_logprobs", top_logprobs, DType::F32, {B, N}, logits);
  } else {
    LLAMA4_CHECK_ARG(most <= 0, kOp, ": a row asks for ", most,
                     " top logprobs but 'top_ids' / 'top_logprobs' are undefined");
  }
  check_rows(batch, V);
  check_penalties(batch, V);
  void* ws = nullptr;  // CUDA only; the CPU kernel keeps its scratch per thread
  if (defined(workspace) && logits.device.type == DeviceType::CUDA) {
    detail::check_same_device(kOp, "workspace", workspace, "logits", logits);
    detail::check_contiguous_out(kOp, "workspace", workspace);
    LLAMA4_CHECK_ARG(reinterpret_cast<uintptr_t>(workspace.data) % 256 == 0, kOp,
                     ": 'workspace' must start at a 256-byte boundary (a fresh allocation does)");
    const int64_t need = sample_workspace_bytes(logits.device, V, batch);
    LLAMA4_CHECK_ARG(int64_t(workspace.nbytes()) >= need, kOp, ": 'workspace' has ", workspace.nbytes(),
                     " bytes, this batch needs ", need, " (sample_workspace_bytes)");
    ws = workspace.data;
  }
  if (B == 0) return;
  // No CUDA sampler yet, so this only runs on the CPU context.
  const detail::LastDimContiguousInput lc(Context::cpu(), logits);
  switch (logits.device.type) {
    case DeviceType::CPU: cpu::sample(tokens, logprobs, top_ids, top_logprobs, status, lc, batch); break;
    case DeviceType::CUDA:
      LLAMA4_CUDA_CALL(cuda::sample(tokens, logprobs, top_ids, top_logprobs, status, lc, batch, ws));
      break;
  }
}

int64_t sample_workspace_bytes(Device device, int64_t vocab, const SamplerBatch& batch) {
  LLAMA4_CHECK_ARG(vocab >= 1, "sample_workspace_bytes: vocab must be >= 1, got ", vocab);
  int64_t bytes = 0;
  switch (device.type) {
    case DeviceType::CPU: break;
    case DeviceType::CUDA: LLAMA4_CUDA_CALL(bytes = int64_t(cuda::sample_workspace_bytes(vocab, batch))); break;
  }
  return bytes;
}

}  // namespace llama4::ops
