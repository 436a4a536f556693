// Decode layouts, their uploads, and CUDA graph capture and replay (model/decode_graphs.h).
#include "model/decode_graphs.h"

#include <algorithm>
#include <cstring>

#include "cuda/graph.h"
#include "cuda/runtime.h"
#include "llama4/error.h"
#include "llama4/ops.h"

namespace llama4::detail {

namespace {
constexpr int64_t kMinTableWidth = 4;
constexpr int kNumInputs = 5;  // per-row int32 inputs before the two page tables
}  // namespace

std::vector<int64_t> decode_buckets(int64_t max_batch) {
  LLAMA4_CHECK_ARG(max_batch >= 1, "decode_buckets: max_batch must be >= 1, got ", max_batch);
  std::vector<int64_t> out;
  for (int64_t b : {1, 2, 4})
    if (b < max_batch) out.push_back(b);
  for (int64_t b = 8; b < max_batch; b += 8) out.push_back(b);
  out.push_back(max_batch);
  return out;
}

int64_t decode_bucket(int64_t batch, int64_t max_batch) {
  if (max_batch < 1 || batch < 1 || batch > max_batch) return 0;
  if (batch <= 4) return std::min<int64_t>(batch <= 1 ? 1 : batch <= 2 ? 2 : 4, max_batch);
  return std::min<int64_t>((batch + 7) / 8 * 8, max_batch);
}

int64_t decode_table_width(int64_t pages) {
  LLAMA4_CHECK_ARG(pages >= 0, "decode_table_width: pages must be >= 0, got ", pages);
  int64_t w = kMinTableWidth;
  while (w < pages) w *= 2;
  return w;
}

DecodeGraphs::DecodeGraphs(const Context& ctx, int64_t max_batch, int64_t vocab, bool use_graphs,
                           int64_t max_graphs)
    : ctx_(ctx), max_batch_(max_batch), vocab_(vocab), use_graphs_(use_graphs), max_graphs_(max_graphs) {
  // The CPU runs decode layouts only eagerly, for tests (EngineOptions::decode_layouts_on_cpu).
  LLAMA4_CHECK_ARG(ctx.is_cuda() || !use_graphs, "DecodeGraphs: CUDA graphs need a CUDA device, got ",
                   ctx.device().str());
  LLAMA4_CHECK_ARG(max_batch >= 1, "DecodeGraphs: max_batch must be >= 1, got ", max_batch);
  LLAMA4_CHECK_ARG(max_graphs >= 1, "max_decode_graphs must be >= 1, got ", max_graphs);
  // Long-lived (cudaMalloc), not from the step pool: graphs write it at a fixed address.
  logits_ = Tensor::empty({decode_buckets(max_batch).back(), vocab}, DType::F32, ctx.device());
}

DecodeGraphs::~DecodeGraphs() {
  try {
    ctx_.synchronize();
  } catch (...) {  // a destructor must not throw; a broken context has nothing left to wait for
  }
}

DecodeGraphs::Layout& DecodeGraphs::layout(int64_t rows, int64_t width) {
  auto it = layouts_.find({rows, width});
  if (it != layouts_.end()) return it->second;
  Layout L;
  L.rows = rows;
  L.width = width;
  L.inputs = Tensor::empty({kNumInputs * rows + 2 * rows * width}, DType::I32, ctx_.device());
  const TensorView in = L.inputs.view();
  const std::shared_ptr<void>& owner = L.inputs.storage();
  auto part = [&](int64_t first, const Shape& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return Tensor::wrap(in.slice0(first, first + n).reshape(shape), owner);
  };
  L.ids = part(0, {rows});
  L.plan.query_seq = part(rows, {rows});
  L.plan.query_pos = part(2 * rows, {rows});
  L.plan.slots[0] = part(3 * rows, {rows});
  L.plan.slots[1] = part(4 * rows, {rows});
  L.plan.page_table[0] = part(kNumInputs * rows, {rows, width});
  L.plan.page_table[1] = part(kNumInputs * rows + rows * width, {rows, width});
  return layouts_.emplace(std::make_pair(rows, width), std::move(L)).first->second;
}

void DecodeGraphs::upload(const Layout& L, const KVCache& cache, const KVCache::HostPlan& plan,
                          const std::vector<int32_t>& tokens) {
  const int64_t B = int64_t(tokens.size()), R = L.rows, W = L.width;
  const size_t bytes = size_t(L.inputs.view().numel()) * sizeof(int32_t);
  const int device = ctx_.device().index;
  Staging& st = staging_[next_staging_];
  int32_t* h = L.inputs.ptr<int32_t>();  // the CPU: packed in place
  if (ctx_.is_cuda()) {
    next_staging_ = (next_staging_ + 1) % 2;
    if (st.copied) cuda::wait_event(st.copied, device);  // its previous copy has read it
    else st.copied = cuda::new_event(device);
    if (st.bytes < bytes) {
      st.host = cuda::allocate_pinned(std::max(bytes, 2 * st.bytes));
      st.bytes = std::max(bytes, 2 * st.bytes);
    }
    h = static_cast<int32_t*>(st.host.get());
  }
  int32_t* ids = h;
  int32_t* qseq = h + R;
  int32_t* qpos = h + 2 * R;
  int32_t* slots[2] = {h + 3 * R, h + 4 * R};
  int32_t* table[2] = {h + kNumInputs * R, h + kNumInputs * R + R * W};
  std::copy(tokens.begin(), tokens.end(), ids);
  std::copy(plan.query_seq.begin(), plan.query_seq.end(), qseq);
  std::copy(plan.query_pos.begin(), plan.query_pos.end(), qpos);
  for (int g = 0; g < 2; ++g) {
    std::copy(plan.slots[g].begin(), plan.slots[g].end(), slots[g]);
    std::copy(plan.page_table[g].begin(), plan.page_table[g].end(), table[g]);
  }
  for (int64_t r = B; r < R; ++r) {  // padding rows: token 0 at position 0 of their own table row
    ids[r] = 0;
    qseq[r] = int32_t(r);
    qpos[r] = 0;
    for (int g = 0; g < 2; ++g) {
      slots[g][r] = -1;  // not written to the cache
      int32_t* row = table[g] + r * W;
      std::fill(row, row + W, -1);
      row[0] = cache.total_pages(g) > 0 ? 0 : -1;  // position 0 reads page 0's first slot
    }
  }
  if (!ctx_.is_cuda()) return;
  cuda::memcpy(L.inputs.view().data, h, bytes, 0, device, ctx_.stream());
  cuda::record_event(st.copied, device, ctx_.stream());
}

void DecodeGraphs::evict_oldest_graph(const Layout& keep) {
  Layout* oldest = nullptr;
  for (auto& [key, L] : layouts_)
    if (L.graph && &L != &keep && (!oldest || L.last_use < oldest->last_use)) oldest = &L;
  if (!oldest) return;
  ctx_.synchronize();  // no replay of it in flight (rare: only past max_graphs layouts)
  oldest->graph.reset();
  --stats_.graphs;
  ++stats_.evictions;
  cuda::trim_graph_memory(ctx_.device().index);
}

void DecodeGraphs::capture(const TextModel& model, KVCache& cache, Layout& L, const TensorView& logits) {
  const int device = ctx_.device().index;
  if (stats_.graphs >= max_graphs_) evict_oldest_graph(L);
  if (!capture_stream_) capture_stream_ = cuda::new_stream(device);
  void* stream = capture_stream_.get();
  const Context cap = Context::cuda(device, stream);
  try {
    cuda::begin_capture(device, stream);
    model.forward_into(cap, L.ids, cache, L.plan, logits);
    L.graph = cuda::end_capture(device, stream);
  } catch (const std::exception& e) {
    cuda::abort_capture(device, stream);
    L.failed = true;  // the step's eager run already produced its logits: go on without a graph
    stats_.error = detail::concat("decode graph of ", L.rows, " rows x ", L.width, " table columns: ", e.what());
    return;
  }
  ++stats_.captures;
  ++stats_.graphs;
}

Tensor DecodeGraphs::step(const TextModel& model, KVCache& cache, const std::vector<int64_t>& seqs,
                          const std::vector<int32_t>& tokens) {
  const int64_t B = int64_t(seqs.size());
  const int64_t rows = decode_bucket(B, max_batch_);
  LLAMA4_CHECK_ARG(rows > 0 && tokens.size() == seqs.size(), "DecodeGraphs.step: ", B,
                   " sequences with ", tokens.size(), " tokens; a decode layout takes 1 to ", max_batch_,
                   " sequences, one token each");
  const int64_t width = decode_table_width(cache.table_width(seqs));
  const KVCache::HostPlan plan = cache.host_plan(seqs, std::vector<int64_t>(seqs.size(), 1), width);
  Layout& L = layout(rows, width);
  L.last_use = ++steps_;
  upload(L, cache, plan, tokens);
  const TensorView out = logits_.view().slice0(0, rows);
  if (use_graphs_ && L.graph) {
    cuda::launch_graph(L.graph, ctx_.device().index, ctx_.stream());
    ++stats_.replays;
  } else {
    model.forward_into(ctx_, L.ids, cache, L.plan, out);
    ++stats_.eager_steps;
    if (use_graphs_ && !L.failed) capture(model, cache, L, out);
  }
  Tensor result = ctx_.empty({B, vocab_}, DType::F32);
  ops::copy(ctx_, result, out.slice0(0, B));
  return result;
}

DecodeGraphStats DecodeGraphs::stats() const {
  DecodeGraphStats s = stats_;
  if (ctx_.is_cuda()) s.graph_memory_bytes = cuda::graph_memory(ctx_.device().index).reserved_bytes;
  return s;
}

}  // namespace llama4::detail
