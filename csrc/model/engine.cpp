// Engine: sequences, the KV cache and the step loop that splits long prompts into passes.
#include "llama4/engine.h"

#include <algorithm>
#include <unordered_set>

#include "llama4/communicator.h"
#include "llama4/error.h"
#include "llama4/ops.h"
#include "model/decode_graphs.h"
#include "model/image_rows.h"

namespace llama4 {

namespace {
int64_t rows_of(const StepRequest& r) {
  switch (r.logits) {
    case LogitRows::All: return int64_t(r.tokens.size());
    case LogitRows::Last: return 1;
    case LogitRows::None: return 0;
  }
  return 0;
}
}  // namespace

namespace {
TextShard shard_of(const TextConfig& config, const EngineOptions& o) {
  return o.comm ? TextShard::of(config, o.comm->rank(), o.comm->size()) : TextShard();
}
}  // namespace

Engine::Engine(TextConfig config, DType dtype, WeightMap weights, const EngineOptions& options)
    : model_(config, dtype, std::move(weights), shard_of(config, options)),
      options_(options),
      ctx_(Context::on(model_.device()).with_communicator(options.comm)) {
  const TextConfig& c = model_.config();
  LLAMA4_CHECK_ARG(options.page_size > 0, "page_size must be positive, got ", options.page_size);
  LLAMA4_CHECK_ARG(options.max_sequences > 0, "max_sequences must be positive, got ", options.max_sequences);
  LLAMA4_CHECK_ARG(options.max_decode_graphs >= 1, "max_decode_graphs must be >= 1, got ",
                   options.max_decode_graphs);
  LLAMA4_CHECK_ARG(options.max_step_tokens >= 0, "max_step_tokens must be >= 0, got ", options.max_step_tokens);
  LLAMA4_CHECK_ARG(options.image_token_id >= -1 && options.image_token_id < c.vocab_size,
                   "image_token_id must be -1 (no images) or a token id in [0, ", c.vocab_size, "), got ",
                   options.image_token_id);
  if (options_.max_step_tokens == 0 || options_.max_step_tokens > c.attention_chunk_size)
    options_.max_step_tokens = c.attention_chunk_size;
  std::vector<int> chunked(size_t(c.num_hidden_layers));
  for (int i = 0; i < int(c.num_hidden_layers); ++i) chunked[size_t(i)] = c.uses_rope(i) ? 1 : 0;
  KVCacheConfig kc = KVCacheConfig::from_budget(
      int(c.num_hidden_layers), chunked, int(model_.shard().kv_count), int(c.head_dim),
      options_.kv_cache_dtype.value_or(dtype),
      model_.device(), options_.page_size, c.attention_chunk_size, options_.kv_cache_bytes,
      options_.max_sequences, options_.max_step_tokens);
  if (ctx_.world_size() > 1) {  // rank 0's page tables index every rank's pools: the same pages everywhere
    Tensor mine = Tensor::empty({2}, DType::I64, Device::cpu());
    mine.ptr<int64_t>()[0] = kc.num_pages_chunked;
    mine.ptr<int64_t>()[1] = kc.num_pages_global;
    Tensor all = Tensor::empty({2 * ctx_.world_size()}, DType::I64, Device::cpu());
    options_.comm->all_gather(ctx_, all, mine);
    for (int r = 0; r < ctx_.world_size(); ++r) {
      kc.num_pages_chunked = std::min(kc.num_pages_chunked, all.ptr<int64_t>()[2 * r]);
      kc.num_pages_global = std::min(kc.num_pages_global, all.ptr<int64_t>()[2 * r + 1]);
    }
  }
  cache_ = std::make_unique<KVCache>(kc, ctx_);
  if ((ctx_.is_cuda() || options_.decode_layouts_on_cpu) && ctx_.world_size() == 1)
    decode_ = std::make_unique<detail::DecodeGraphs>(ctx_, options_.max_sequences, c.vocab_size,
                                                     ctx_.is_cuda() && !options_.enforce_eager,
                                                     options_.max_decode_graphs);
  start_group();
}

bool Engine::uses_cuda_graphs() const { return decode_ && decode_->use_graphs(); }

DecodeGraphStats Engine::decode_graph_stats() const { return decode_ ? decode_->stats() : DecodeGraphStats(); }

// One new token per sequence, a logits row each, text only, no more sequences than the layouts hold.
bool Engine::is_decode_step(const std::vector<StepRequest>& requests) const {
  if (!decode_ || requests.empty() || int64_t(requests.size()) > decode_->max_batch()) return false;
  for (const StepRequest& r : requests)
    if (r.tokens.size() != 1 || r.logits == LogitRows::None || r.image_features.ndim > 0) return false;
  return true;
}

Tensor Engine::decode_step(const std::vector<StepRequest>& requests) {
  std::vector<int64_t> seqs;
  std::vector<int32_t> tokens;
  for (const StepRequest& r : requests) {
    seqs.push_back(r.seq);
    tokens.push_back(r.tokens[0]);
  }
  const std::vector<int64_t> one(seqs.size(), 1);
  cache_->reserve(seqs, one);
  Tensor logits = decode_->step(model_, *cache_, seqs, tokens);
  cache_->commit(seqs, one);
  return logits;
}

int64_t Engine::add_sequence() { return cache_->add_sequence(); }
void Engine::free_sequence(int64_t seq) { cache_->free_sequence(seq); }
int64_t Engine::length(int64_t seq) const { return cache_->length(seq); }

// Fails before anything runs when the step cannot fit: global-layer pages for every new token, and
// chunked-layer pages for the first pass (later passes of a long prompt reuse the pages that its
// earlier chunks free, so with at most max_sequences live sequences they always fit).
void Engine::check_capacity(const std::vector<StepRequest>& requests) const {
  const int64_t P = options_.page_size;
  for (int g = 0; g < 2; ++g) {
    if (cache_->total_pages(g) == 0) continue;
    int64_t need = 0;
    for (const StepRequest& r : requests) {
      const int64_t len = cache_->length(r.seq), n = int64_t(r.tokens.size());
      const int64_t upto = g == 1 ? len + n : len + std::min(n, options_.max_step_tokens);
      const int64_t held = int64_t(cache_->pages_of(r.seq, g).size());
      need += std::max<int64_t>(0, (upto + P - 1) / P - held);
    }
    if (need > cache_->free_pages(g))
      throw CacheFullError(detail::concat(
          "KV cache full: this step needs ", need, " more ", g == 0 ? "chunked-layer" : "global-layer",
          " pages but only ", cache_->free_pages(g), " of ", cache_->total_pages(g),
          " are free; finish or free sequences, or load with a larger kv_cache_bytes"));
  }
}

Tensor Engine::step(const std::vector<StepRequest>& requests) {
  const TextConfig& c = model_.config();
  LLAMA4_CHECK_ARG(rank() == 0, "Engine.step: rank ", rank(), " follows rank 0's steps (call follow())");
  const auto lock = lock_group();  // no keep-alive between the passes of this step
  std::unordered_set<int64_t> seen;
  int64_t total_rows = 0;
  for (const StepRequest& r : requests) {
    LLAMA4_CHECK_ARG(seen.insert(r.seq).second, "sequence ", r.seq, " appears twice in one step");
    LLAMA4_CHECK_ARG(!r.tokens.empty(), "sequence ", r.seq, ": a step needs at least one token");
    const int64_t len = cache_->length(r.seq);  // also validates the id
    const int64_t end = len + int64_t(r.tokens.size());
    LLAMA4_CHECK_ARG(end <= c.max_position_embeddings, "sequence ", r.seq, " would reach ", end,
                     " tokens, more than the context length max_position_embeddings = ",
                     c.max_position_embeddings);
    for (int32_t t : r.tokens)
      LLAMA4_CHECK_ARG(0 <= t && t < c.vocab_size, "sequence ", r.seq, ": token id ", t,
                       " is outside the vocabulary [0, ", c.vocab_size, ")");
    check_image_features(r, options_.image_token_id, model_);
    total_rows += rows_of(r);
  }
  check_capacity(requests);
  if (is_decode_step(requests)) return decode_step(requests);

  Tensor logits = ctx_.empty({total_rows, c.vocab_size}, DType::F32);
  std::vector<int64_t> done(requests.size(), 0);       // tokens of each request already run
  std::vector<int64_t> first_row(requests.size(), 0);  // its first row in `logits`
  for (size_t i = 1; i < requests.size(); ++i) first_row[i] = first_row[i - 1] + rows_of(requests[i - 1]);

  for (;;) {
    std::vector<int64_t> seqs, n_new;
    std::vector<size_t> which;
    for (size_t i = 0; i < requests.size(); ++i) {
      const int64_t left = int64_t(requests[i].tokens.size()) - done[i];
      if (left == 0) continue;
      seqs.push_back(requests[i].seq);
      n_new.push_back(std::min(left, options_.max_step_tokens));
      which.push_back(i);
    }
    if (seqs.empty()) break;
    int64_t T = 0;
    for (int64_t n : n_new) T += n;
    Tensor ids = Tensor::empty({T}, DType::I32, Device::cpu());
    std::vector<int32_t> rows;      // token indices (in this pass) whose logits are wanted
    std::vector<int64_t> dest;      // and their rows in `logits`
    int64_t at = 0;
    for (size_t b = 0; b < which.size(); ++b) {
      const StepRequest& r = requests[which[b]];
      const int64_t from = done[which[b]], n = n_new[b];
      std::copy_n(r.tokens.begin() + from, n, ids.ptr<int32_t>() + at);
      for (int64_t j = 0; j < n; ++j) {
        const bool last = from + j + 1 == int64_t(r.tokens.size());
        const bool all = r.logits == LogitRows::All;
        if (all || (last && r.logits == LogitRows::Last)) {
          rows.push_back(int32_t(at + j));
          dest.push_back(first_row[which[b]] + (all ? from + j : 0));
        }
      }
      at += n;
    }
    std::vector<int64_t> from(which.size());
    for (size_t b = 0; b < which.size(); ++b) from[b] = done[which[b]];
    const PassImages images = pass_images(ctx_, requests, which, from, n_new, options_.image_token_id, model_);
    cache_->reserve(seqs, n_new);
    const KVCache::StepPlan plan = cache_->plan(seqs, n_new);
    if (group_) send_pass(ids, plan, rows, images.token_id);
    const Tensor pass_logits = forward_pass(ids, plan, rows, images.rows, images.token_id);
    cache_->commit(seqs, n_new);
    for (size_t j = 0; j < rows.size(); ++j)
      ops::copy(ctx_, logits.view().slice0(dest[j], dest[j] + 1),
                pass_logits.view().slice0(int64_t(j), int64_t(j) + 1));
    for (size_t b = 0; b < which.size(); ++b) done[which[b]] += n_new[b];
  }
  return logits;
}

}  // namespace llama4
