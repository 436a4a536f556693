#include "model/sample_rows.h"

#include <algorithm>

#include "llama4/error.h"
#include "llama4/ops.h"

namespace llama4 {

namespace {

// The sampler reads one logits row per sample: a request's first draw takes its n samples from
// one row, so those rows are repeated (only then; otherwise the step's logits go in as they are).
Tensor logits_per_sample(const Context& ctx, const TensorView& logits, const std::vector<SampleRow>& rows,
                         bool& same) {
  same = int64_t(rows.size()) == logits.size(0);
  for (size_t r = 0; same && r < rows.size(); ++r) same = rows[r].logits_row == int64_t(r);
  if (same) return {};
  Tensor g = ctx.empty({int64_t(rows.size()), logits.size(1)}, DType::F32);
  for (size_t r = 0; r < rows.size(); ++r)
    ops::copy(ctx, g.view().slice0(int64_t(r), int64_t(r) + 1),
              logits.slice0(rows[r].logits_row, rows[r].logits_row + 1));
  return g;
}

}  // namespace

std::vector<SampledToken> sample_rows(const Context& ctx, const TensorView& logits,
                                      const std::vector<SampleRow>& rows, Tensor& workspace) {
  std::vector<SampledToken> out(rows.size());
  if (rows.empty()) return out;

  SamplerBatch batch;
  int32_t top_n = 0;
  bool any_logprobs = false;
  for (const SampleRow& r : rows) {
    const SamplingParams& p = *r.params;
    const SamplerRow row = make_sampler_row(p, r.seed, r.sample, r.token_index);
    if (p.has_penalties()) {
      const int32_t* t = r.tokens->data();
      batch.add_row(row, t, r.prompt_len, t + r.prompt_len, int64_t(r.tokens->size()) - r.prompt_len);
    } else {
      batch.add_row(row);
    }
    top_n = std::max(top_n, p.logprobs);
    any_logprobs |= p.logprobs >= 0;
  }

  // The logits stay where the step left them (the sampler has a CUDA twin with the same random
  // numbers); the scratch comes from the context's stream-ordered pool.
  LLAMA4_CHECK_ARG(logits.device == ctx.device(), "sample_rows: logits on ", logits.device.str(),
                   " but the engine's context is on ", ctx.device().str());
  bool same = true;
  const Tensor gathered = logits_per_sample(ctx, logits, rows, same);
  const TensorView x = same ? logits : gathered.view();
  const Device dev = ctx.device();
  const int64_t B = int64_t(rows.size());
  Tensor tokens = ctx.empty({B}, DType::I32), status = ctx.empty({B}, DType::I32);
  Tensor lp = any_logprobs ? ctx.empty({B}, DType::F32) : Tensor();
  Tensor top_ids = top_n > 0 ? ctx.empty({B, top_n}, DType::I32) : Tensor();
  Tensor top_lp = top_n > 0 ? ctx.empty({B, top_n}, DType::F32) : Tensor();
  const int64_t scratch = ops::sample_workspace_bytes(dev, x.size(1), batch);
  if (scratch > 0 && (!workspace.view().data || workspace.view().size(0) < scratch))
    workspace = ctx.empty({scratch * 2}, DType::U8);  // headroom: batches vary step to step
  ops::sample(tokens, any_logprobs ? lp.view() : TensorView{}, top_n ? top_ids.view() : TensorView{},
              top_n ? top_lp.view() : TensorView{}, status, x, batch,
              scratch > 0 ? workspace.view() : TensorView{});

  // One copy back per output (a no-op on the CPU), each waiting for the sampler: the scheduler's
  // bookkeeping is host-side.
  const Tensor h_tokens = ops::to_device(ctx, tokens, Device::cpu());
  const Tensor h_status = ops::to_device(ctx, status, Device::cpu());
  const Tensor h_lp = any_logprobs ? ops::to_device(ctx, lp, Device::cpu()) : Tensor();
  const Tensor h_ids = top_n ? ops::to_device(ctx, top_ids, Device::cpu()) : Tensor();
  const Tensor h_top = top_n ? ops::to_device(ctx, top_lp, Device::cpu()) : Tensor();
  for (int64_t r = 0; r < B; ++r) {
    SampledToken& s = out[size_t(r)];
    s.token = h_tokens.ptr<int32_t>()[r];
    s.status = h_status.ptr<int32_t>()[r];
    const int32_t n = rows[size_t(r)].params->logprobs;
    if (n < 0 || s.status != 0) continue;
    s.logprobs.logprob = h_lp.ptr<float>()[r];
    s.logprobs.top_ids.assign(h_ids.ptr<int32_t>() + r * top_n, h_ids.ptr<int32_t>() + r * top_n + n);
    s.logprobs.top_logprobs.assign(h_top.ptr<float>() + r * top_n, h_top.ptr<float>() + r * top_n + n);
  }
  return out;
}

}  // namespace llama4
