#include "model/sample_rows.h"

#include <algorithm>

#include "llama4/ops.h"

namespace llama4 {

namespace {

// The sampler reads one logits row per sample: a request's first draw takes its n samples from
// one row, so those rows are repeated (only then; otherwise the step's logits go in as they are).
Tensor logits_per_sample(const TensorView& logits, const std::vector<SampleRow>& rows, bool& same) {
  same = int64_t(rows.size()) == logits.size(0);
  for (size_t r = 0; same && r < rows.size(); ++r) same = rows[r].logits_row == int64_t(r);
  if (same) return {};
  Tensor g = Tensor::empty({int64_t(rows.size()), logits.size(1)}, DType::F32, logits.device);
  for (size_t r = 0; r < rows.size(); ++r)
    ops::copy(g.view().slice0(int64_t(r), int64_t(r) + 1),
              logits.slice0(rows[r].logits_row, rows[r].logits_row + 1));
  return g;
}

}  // namespace

std::vector<SampledToken> sample_rows(const TensorView& logits, const std::vector<SampleRow>& rows,
                                      Tensor& workspace) {
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

  // The sampler runs on the CPU (no CUDA sampler yet): GPU logits come to the host first, one
  // copy per step that waits for the step's work.
  const Tensor host_logits = logits.device.is_cuda() ? ops::to_device(logits, Device::cpu()) : Tensor();
  const TensorView all = logits.device.is_cuda() ? host_logits.view() : logits;
  bool same = true;
  const Tensor gathered = logits_per_sample(all, rows, same);
  const TensorView x = same ? all : gathered.view();
  const Device dev = all.device;
  const int64_t B = int64_t(rows.size());
  Tensor tokens = Tensor::empty({B}, DType::I32, dev), status = Tensor::empty({B}, DType::I32, dev);
  Tensor lp = any_logprobs ? Tensor::empty({B}, DType::F32, dev) : Tensor();
  Tensor top_ids = top_n > 0 ? Tensor::empty({B, top_n}, DType::I32, dev) : Tensor();
  Tensor top_lp = top_n > 0 ? Tensor::empty({B, top_n}, DType::F32, dev) : Tensor();
  const int64_t scratch = ops::sample_workspace_bytes(dev, x.size(1), batch);
  if (scratch > 0 && (!workspace.view().data || workspace.view().size(0) < scratch))
    workspace = Tensor::empty({scratch * 2}, DType::U8, dev);  // headroom: batches vary step to step
  ops::sample(tokens, any_logprobs ? lp.view() : TensorView{}, top_n ? top_ids.view() : TensorView{},
              top_n ? top_lp.view() : TensorView{}, status, x, batch,
              scratch > 0 ? workspace.view() : TensorView{});

  // One copy back per output (a no-op on the CPU): the scheduler's bookkeeping is host-side.
  const Tensor h_tokens = ops::to_device(tokens, Device::cpu());
  const Tensor h_status = ops::to_device(status, Device::cpu());
  const Tensor h_lp = any_logprobs ? ops::to_device(lp, Device::cpu()) : Tensor();
  const Tensor h_ids = top_n ? ops::to_device(top_ids, Device::cpu()) : Tensor();
  const Tensor h_top = top_n ? ops::to_device(top_lp, Device::cpu()) : Tensor();
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
