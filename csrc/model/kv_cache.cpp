// KVCache: two page pools (chunked-local and global layers), per-sequence page tables, and the
// per-step plan (page tables [S, max_pages] int32, slot mappings [T] int32, query rows and
// positions [T] int32). See llama4/kv_cache.h for the contract.
#include "llama4/kv_cache.h"

#include <algorithm>
#include <unordered_set>

#include "llama4/error.h"
#include "llama4/ops.h"

namespace llama4 {

namespace {
constexpr const char* kGroupName[2] = {"chunked", "global"};
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A [rows, cols] int32 tensor on ctx's device holding `host` (built on the CPU, copied once).
Tensor int32_tensor(const Context& ctx, const std::vector<int32_t>& host, const Shape& shape) {
  Tensor cpu = Tensor::empty(shape, DType::I32, Device::cpu());
  std::copy(host.begin(), host.end(), cpu.ptr<int32_t>());
  return ctx.device().is_cpu() ? cpu : ops::to_device(ctx, cpu.view(), ctx.device());
}
}  // namespace

KVCache::KVCache(const KVCacheConfig& config) : KVCache(config, Context::on(config.device)) {}

KVCache::KVCache(const KVCacheConfig& config, const Context& ctx) : config_(config), ctx_(ctx) {
  config_.validate();
  LLAMA4_CHECK_ARG(ctx.device() == config_.device, "KVCache: the context is on ", ctx.device().str(),
                   " but the cache on ", config_.device.str());
  const int64_t pages[2] = {config_.num_pages_chunked, config_.num_pages_global};
  for (int g = 0; g < 2; ++g) {
    Pool& pool = pools_[g];
    pool.active = config_.num_layers_in(g) > 0;
    pool.total = pool.active ? pages[g] : 0;
    pool.free.resize(size_t(pool.total));
    pool.refs.assign(size_t(pool.total), 0);
    // A stack popped from the back: hand out pages 0, 1, 2, ... first (easier to read in dumps).
    for (int64_t i = 0; i < pool.total; ++i) pool.free[size_t(i)] = int32_t(pool.total - 1 - i);
  }
  k_.reserve(size_t(config_.num_layers));
  v_.reserve(size_t(config_.num_layers));
  for (int l = 0; l < config_.num_layers; ++l) {
    // Zeroed so that a kernel bug reading an unwritten slot yields zeros, never NaN garbage.
    const Shape shape{pools_[group_of(l)].total, config_.page_size, config_.num_kv_heads,
                      config_.head_dim};
    k_.push_back(Tensor::zeros(shape, config_.dtype, config_.device));  // long-lived: not from the step pool
    v_.push_back(Tensor::zeros(shape, config_.dtype, config_.device));
    if (config_.dtype == DType::F8E4M3) {
      const Shape sshape{shape[0], shape[1], shape[2]};
      k_scale_.push_back(Tensor::zeros(sshape, DType::F32, config_.device));
      v_scale_.push_back(Tensor::zeros(sshape, DType::F32, config_.device));
    }
  }
}

// ---- sequences --------------------------------------------------------------------------------

const KVCache::Sequence& KVCache::seq(int64_t id, const char* op) const {
  auto it = seqs_.find(id);
  LLAMA4_CHECK_ARG(it != seqs_.end(), "KVCache.", op, ": unknown sequence id ", id,
                   " (never added, or already freed)");
  return it->second;
}
KVCache::Sequence& KVCache::seq(int64_t id, const char* op) {
  return const_cast<Sequence&>(static_cast<const KVCache*>(this)->seq(id, op));
}

int64_t KVCache::add_sequence() {
  const int64_t id = next_id_++;
  seqs_.emplace(id, Sequence{});
  return id;
}

void KVCache::free_sequence(int64_t id) {
  Sequence& s = seq(id, "free_sequence");
  for (int g = 0; g < 2; ++g)
    for (int32_t p : s.pages[g])
      if (p >= 0) pools_[g].drop(p);
  seqs_.erase(id);
}

int32_t KVCache::Pool::take() {
  const int32_t page = free.back();
  free.pop_back();
  refs[size_t(page)] = 1;
  return page;
}

void KVCache::Pool::drop(int32_t page) {
  if (--refs[size_t(page)] == 0) free.push_back(page);
}

int64_t KVCache::fork_pages(int64_t parent) const {
  const Sequence& s = seq(parent, "fork_sequence");
  return s.length % config_.page_size != 0 ? 1 : 0;
}

int64_t KVCache::fork_sequence(int64_t parent) {
  const Sequence& src = seq(parent, "fork_sequence");
  const int64_t P = config_.page_size;
  LLAMA4_CHECK_ARG(int64_t(src.pages[0].size()) == ceil_div(src.length, P), "KVCache.fork_sequence: sequence ",
                   parent, " has reserved pages that are not committed; fork after commit");
  const int64_t copies = fork_pages(parent);
  for (int g = 0; g < 2; ++g)
    if (pools_[g].active && int64_t(pools_[g].free.size()) < copies)
      throw CacheFullError(detail::concat("KVCache.fork_sequence: the ", kGroupName[g],
                                          " pool has no free page for the copy of sequence ", parent,
                                          "'s last page; nothing was forked"));
  Sequence child = src;
  for (int g = 0; g < 2; ++g) {
    Pool& pool = pools_[g];
    for (size_t j = 0; j < child.pages[g].size(); ++j) {
      int32_t& page = child.pages[g][j];
      if (page < 0) continue;
      const bool last_partial = copies && j + 1 == child.pages[g].size();
      if (last_partial) {
        const int32_t fresh = pool.take();
        copy_page(g, page, fresh);
        if (record_copies_) copies_.push_back({int32_t(g), page, fresh});
        page = fresh;
      } else {
        ++pool.refs[size_t(page)];
      }
    }
  }
  const int64_t id = next_id_++;
  seqs_.emplace(id, std::move(child));
  return id;
}

std::vector<KVCache::PageCopy> KVCache::take_page_copies() {
  std::vector<PageCopy> out;
  out.swap(copies_);
  return out;
}

void KVCache::copy_page(int group, int32_t from, int32_t to) {
  check_group("copy_page", group);
  LLAMA4_CHECK_ARG(0 <= from && from < pools_[group].total && 0 <= to && to < pools_[group].total,
                   "KVCache.copy_page: pages ", from, " -> ", to, " outside the ", kGroupName[group], " pool of ",
                   pools_[group].total);
  for (int l = 0; l < config_.num_layers; ++l) {
    if (group_of(l) != group) continue;
    for (const Tensor* t : {&k_[size_t(l)], &v_[size_t(l)]})
      ops::copy(ctx_, t->view().slice0(to, to + 1), t->view().slice0(from, from + 1));
    if (!k_scale_.empty())
      for (const Tensor* t : {&k_scale_[size_t(l)], &v_scale_[size_t(l)]})
        ops::copy(ctx_, t->view().slice0(to, to + 1), t->view().slice0(from, from + 1));
  }
}

int64_t KVCache::pages_needed(int64_t id, int64_t n) const {
  const Sequence& s = seq(id, "pages_needed");
  LLAMA4_CHECK_ARG(n >= 0, "KVCache.pages_needed: n must be >= 0, got ", n);
  return std::max<int64_t>(0, ceil_div(s.length + n, config_.page_size) - int64_t(s.pages[0].size()));
}

int64_t KVCache::pages_for_tokens(int group, int64_t tokens, int64_t max_step_tokens) const {
  check_group("pages_for_tokens", group);
  if (!pools_[group].active) return 0;
  const int64_t all = ceil_div(tokens, config_.page_size);
  if (group == 1 || config_.chunk_size == 0) return all;
  const int64_t step = max_step_tokens > 0 ? std::min(max_step_tokens, config_.chunk_size) : config_.chunk_size;
  return std::min(all, KVCacheConfig::chunked_pages_bound(config_.page_size, config_.chunk_size, step));
}

int64_t KVCache::length(int64_t id) const { return seq(id, "length").length; }

void KVCache::check_batch(const char* op, const std::vector<int64_t>& seqs,
                          const std::vector<int64_t>& n_new) const {
  LLAMA4_CHECK_ARG(seqs.size() == n_new.size(), "KVCache.", op, ": 'seqs' has ", seqs.size(),
                   " entries but 'n_new' has ", n_new.size());
  std::unordered_set<int64_t> seen;
  for (size_t i = 0; i < seqs.size(); ++i) {
    seq(seqs[i], op);
    LLAMA4_CHECK_ARG(seen.insert(seqs[i]).second, "KVCache.", op, ": sequence id ", seqs[i],
                     " appears twice in one batch");
    LLAMA4_CHECK_ARG(n_new[i] >= 0, "KVCache.", op, ": 'n_new[", i, "]' must be >= 0, got ",
                     n_new[i], " (sequence id ", seqs[i], ")");
    // One step adds at most one chunk per sequence: the chunked pool is sized on that bound.
    LLAMA4_CHECK_ARG(config_.chunk_size == 0 || n_new[i] <= config_.chunk_size, "KVCache.", op,
                     ": sequence id ", seqs[i], " adds ", n_new[i],
                     " tokens in one step; at most chunk_size=", config_.chunk_size,
                     " are allowed (split longer prefills)");
  }
}

// ---- reserve / commit ---------------------------------------------------------------------------

void KVCache::reserve(const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new) {
  check_batch("reserve", seqs, n_new);
  const int64_t P = config_.page_size;
  // New logical pages per sequence (the same count in both groups: tables grow in lockstep).
  std::vector<int64_t> grow(seqs.size(), 0);
  int64_t need = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const Sequence& s = seq(seqs[i], "reserve");
    const int64_t want = ceil_div(s.length + n_new[i], P);
    grow[i] = std::max<int64_t>(0, want - int64_t(s.pages[0].size()));
    need += grow[i];
  }
  for (int g = 0; g < 2; ++g) {
    if (!pools_[g].active) continue;
    const int64_t have = int64_t(pools_[g].free.size());
    if (need > have)
      throw CacheFullError(detail::concat("KVCache.reserve: the ", kGroupName[g], " pool needs ", need,
                                          " free pages for this batch but has ", have, " (of ",
                                          pools_[g].total, "); nothing was reserved"));
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence& s = seq(seqs[i], "reserve");
    for (int g = 0; g < 2; ++g) {
      Pool& pool = pools_[g];
      for (int64_t j = 0; j < grow[i]; ++j) {
        s.pages[g].push_back(pool.active ? pool.take() : -1);
      }
    }
  }
}

void KVCache::commit(const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new) {
  check_batch("commit", seqs, n_new);
  const int64_t P = config_.page_size, C = config_.chunk_size;
  for (size_t i = 0; i < seqs.size(); ++i) {  // check all before changing anything
    const Sequence& s = seq(seqs[i], "commit");
    const int64_t reserved = int64_t(s.pages[0].size()) * P - s.length;
    LLAMA4_CHECK_ARG(n_new[i] <= reserved, "KVCache.commit: sequence id ", seqs[i], " commits ",
                     n_new[i], " tokens but only ", reserved, " are reserved (call reserve first)");
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence& s = seq(seqs[i], "commit");
    s.length += n_new[i];
    if (C == 0 || !pools_[0].active) continue;
    // Logical page j is dead once all its positions precede the next query's chunk start.
    const int64_t chunk_start = s.length / C * C;
    const int64_t dead = chunk_start / P;  // pages [0, dead) end at or before chunk_start
    for (; s.chunked_freed < dead; ++s.chunked_freed) {
      int32_t& page = s.pages[0][size_t(s.chunked_freed)];
      if (page >= 0) pools_[0].drop(page);
      page = -1;
    }
  }
}

// ---- plan -----------------------------------------------------------------------------------------

int64_t KVCache::table_width(const std::vector<int64_t>& seqs) const {
  int64_t width = 0;
  for (int64_t id : seqs) width = std::max<int64_t>(width, int64_t(seq(id, "table_width").pages[0].size()));
  return width;
}

KVCache::HostPlan KVCache::host_plan(const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new,
                                     int64_t width) const {
  check_batch("plan", seqs, n_new);
  const int64_t P = config_.page_size;
  const int64_t S = int64_t(seqs.size());
  int64_t total = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const Sequence& s = seq(seqs[i], "plan");
    const int64_t reserved = int64_t(s.pages[0].size()) * P - s.length;
    LLAMA4_CHECK_ARG(n_new[i] <= reserved, "KVCache.plan: sequence id ", seqs[i], " plans ", n_new[i],
                     " tokens but only ", reserved, " are reserved (call reserve first)");
    total += n_new[i];
  }
  const int64_t widest = table_width(seqs);
  LLAMA4_CHECK_ARG(width == 0 || width >= widest, "KVCache.plan: width ", width, " is narrower than the ",
                   widest, " pages of the widest table");
  HostPlan out;
  out.width = width == 0 ? widest : width;
  out.query_seq.reserve(size_t(total));
  out.query_pos.reserve(size_t(total));
  for (int g = 0; g < 2; ++g) {
    out.page_table[g].assign(size_t(S * out.width), -1);
    out.slots[g].reserve(size_t(total));
  }
  for (int64_t i = 0; i < S; ++i) {
    const Sequence& s = seq(seqs[size_t(i)], "plan");
    for (int g = 0; g < 2; ++g) {
      std::copy(s.pages[g].begin(), s.pages[g].end(), out.page_table[g].begin() + i * out.width);
      for (int64_t p = s.length; p < s.length + n_new[size_t(i)]; ++p) {
        const int32_t page = s.pages[g][size_t(p / P)];
        out.slots[g].push_back(page < 0 ? -1 : int32_t(page * P + p % P));
      }
    }
    for (int64_t p = s.length; p < s.length + n_new[size_t(i)]; ++p) {
      out.query_seq.push_back(int32_t(i));
      out.query_pos.push_back(int32_t(p));
    }
  }
  return out;
}

KVCache::StepPlan KVCache::plan(const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new) const {
  const HostPlan h = host_plan(seqs, n_new);
  const int64_t S = int64_t(seqs.size()), T = int64_t(h.query_pos.size());
  StepPlan out;
  for (int g = 0; g < 2; ++g) {
    out.page_table[g] = int32_tensor(ctx_, h.page_table[g], {S, h.width});
    out.slots[g] = int32_tensor(ctx_, h.slots[g], {T});
  }
  out.query_seq = int32_tensor(ctx_, h.query_seq, {T});
  out.query_pos = int32_tensor(ctx_, h.query_pos, {T});
  return out;
}

// ---- accessors --------------------------------------------------------------------------------------

void KVCache::check_layer(const char* op, int layer) const {
  LLAMA4_CHECK_ARG(layer >= 0 && layer < config_.num_layers, "KVCache.", op, ": layer ", layer,
                   " out of range [0, ", config_.num_layers, ")");
}
void KVCache::check_group(const char* op, int group) const {
  LLAMA4_CHECK_ARG(group == 0 || group == 1, "KVCache.", op,
                   ": group must be 0 (chunked) or 1 (global), got ", group);
}

const TensorView& KVCache::k(int layer) const { return k_tensor(layer).view(); }
const TensorView& KVCache::v(int layer) const { return v_tensor(layer).view(); }
const Tensor& KVCache::k_tensor(int layer) const {
  check_layer("k", layer);
  return k_[size_t(layer)];
}
const Tensor& KVCache::v_tensor(int layer) const {
  check_layer("v", layer);
  return v_[size_t(layer)];
}
ops::KVScales KVCache::scales(int layer) const {
  check_layer("scales", layer);
  if (k_scale_.empty()) return {};
  return {k_scale_[size_t(layer)].view(), v_scale_[size_t(layer)].view()};
}
const Tensor& KVCache::k_scale_tensor(int layer) const {
  check_layer("k_scale", layer);
  LLAMA4_CHECK_ARG(!k_scale_.empty(), "KVCache.k_scale: only FP8 caches have scales (this one is ",
                   dtype_name(config_.dtype), ")");
  return k_scale_[size_t(layer)];
}
const Tensor& KVCache::v_scale_tensor(int layer) const {
  check_layer("v_scale", layer);
  LLAMA4_CHECK_ARG(!v_scale_.empty(), "KVCache.v_scale: only FP8 caches have scales (this one is ",
                   dtype_name(config_.dtype), ")");
  return v_scale_[size_t(layer)];
}
int KVCache::group_of(int layer) const {
  check_layer("group_of", layer);
  return config_.layer_chunked[size_t(layer)] ? 0 : 1;
}

int64_t KVCache::free_pages(int group) const {
  check_group("free_pages", group);
  return int64_t(pools_[group].free.size());
}
int64_t KVCache::total_pages(int group) const {
  check_group("total_pages", group);
  return pools_[group].total;
}
int64_t KVCache::storage_bytes() const {
  int64_t n = 0;
  for (const auto* ts : {&k_, &v_, &k_scale_, &v_scale_})
    for (const Tensor& t : *ts) n += t.view().numel() * int64_t(element_size(t.view().dtype));
  return n;
}
std::vector<int32_t> KVCache::pages_of(int64_t id, int group) const {
  check_group("pages_of", group);
  return seq(id, "pages_of").pages[group];
}

}  // namespace llama4
