// CPU sampler (contract and device-exactness argument: llama4/sampling.h). Per row:
//   scan (max, smallest finite, NaN/+inf) -> raw logprobs (exact fixed-point log-sum-exp, top-N)
//   -> penalties on a copy -> greedy argmax, or: weights pass (w = exp(s), 1/8-nat buckets,
//   block sums) -> top-k / top-p boundaries by exact selection (bucket histogram, then a radix
//   select over the one bucket that holds the boundary) -> kept mass per block -> the inverse-CDF
//   draw in token-id order.
// No pass sorts the vocabulary. Rows run in parallel when there are at least as many as threads;
// otherwise each row's passes split the vocabulary among the threads (same result: every sum
// over tokens is an exact integer).
#include "cpu/sampling.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <vector>

#include "core/sampling_arith.h"
#include "cpu/sampling_passes.h"
#include "llama4/error.h"

namespace llama4::cpu {

namespace {

using namespace llama4::sampling;
using sampling::kBlock;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Cand {
  uint32_t key;
  int32_t id;
  uint64_t W;
};
// The kept prefix of the order (y descending, id ascending): key > key_ or (== and id <= id_).
struct Cut {
  uint32_t key = 0;
  int32_t id = std::numeric_limits<int32_t>::max();
  bool active() const { return key != 0 || id != std::numeric_limits<int32_t>::max(); }
  bool keeps(uint32_t k, int64_t i) const { return k > key || (k == key && i <= id); }
};
struct Progress {
  int64_t count = 0;
  uint64_t mass = 0;
};
// The position the selection looks for: the first (in order) whose running count reaches k
// (top-k), or whose running mass reaches the top-p threshold.
struct Target {
  bool by_mass = false;
  int64_t k = 0;
  double threshold = 0;
  bool reached(const Progress& p) const {
    return by_mass ? mass_reached(p.mass, threshold) : p.count >= k;
  }
};

// Buffers reused across calls (per thread: rows may run in parallel).
struct Scratch {
  std::vector<float> y, w;
  std::vector<uint8_t> bucket;
  std::vector<uint64_t> block;
  std::vector<int64_t> hist_count;  // [threads][256]
  std::vector<uint64_t> hist_mass;
  std::vector<std::vector<int32_t>> ids;  // per-chunk token ids of the wanted buckets
  std::vector<std::vector<Cand>> parts;  // per-chunk candidates, concatenated in id order
  std::vector<Cand> cand;
  std::vector<std::vector<std::pair<float, int32_t>>> tops;
};
Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

// Chunk c of nt over [0, V): whole kBlock blocks, so block sums are per chunk.
template <typename Fn>
void for_chunks(int64_t V, int nt, Fn&& fn) {
  if (nt <= 1) {
    fn(0, int64_t(0), V);
    return;
  }
  const int64_t nb = (V + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
  for (int c = 0; c < nt; ++c) {
    const int64_t lo = std::min(V, nb * c / nt * kBlock), hi = std::min(V, nb * (c + 1) / nt * kBlock);
    fn(c, lo, hi);
  }
}

sampling::ScanResult scan_row(const float* x, int64_t V, int nt) {
  std::vector<sampling::ScanResult> part(size_t(nt), {-kInf, kInf, false});
  for_chunks(V, nt, [&](int c, int64_t lo, int64_t hi) { part[c] = sampling::scan(x + lo, hi - lo); });
  sampling::ScanResult r{-kInf, kInf, false};
  for (const auto& p : part) {
    r.max = std::max(r.max, p.max);
    r.min_finite = std::min(r.min_finite, p.min_finite);
    r.bad |= p.bad;
  }
  return r;
}

int64_t argmax_row(const float* y, int64_t V, float m, int nt) {
  std::vector<int64_t> first(size_t(nt), V);
  for_chunks(V, nt, [&](int c, int64_t lo, int64_t hi) {
    const int64_t i = sampling::first_equal(y + lo, hi - lo, m);
    first[c] = i < hi - lo ? lo + i : V;
  });
  return *std::min_element(first.begin(), first.end());
}

uint64_t exp_sum_row(const float* x, int64_t V, float m, int F, int nt) {
  std::vector<uint64_t> part(size_t(nt), 0);
  for_chunks(V, nt, [&](int c, int64_t lo, int64_t hi) {
    part[c] = sampling::exp_sum(x + lo, hi - lo, m, 1.0f, F);
  });
  uint64_t s = 0;
  for (uint64_t p : part) s += p;
  return s;
}

// The tokens i (in id order) with lo <= bucket[i] <= hi and keep(i), with their keys and weights.
template <typename Keep>
void collect(const float* y, int64_t V, int F, int nt, Scratch& sc, int lo, int hi, Keep keep) {
  sc.parts.resize(size_t(nt));
  sc.ids.resize(size_t(nt));
  for_chunks(V, nt, [&](int c, int64_t b, int64_t e) {
    std::vector<int32_t>& ids = sc.ids[c];
    std::vector<Cand>& part = sc.parts[c];
    ids.clear();
    part.clear();
    sampling::find_buckets(sc.bucket.data() + b, e - b, b, lo, hi, &ids);
    const float* w = sc.w.data();
    for (const int32_t i : ids) {
      const uint32_t key = order_key(y[i]);
      if (keep(key, i)) part.push_back({key, i, fixed_weight(w[i], F)});
    }
  });
  sc.cand.clear();
  for (int c = 0; c < nt; ++c) sc.cand.insert(sc.cand.end(), sc.parts[c].begin(), sc.parts[c].end());
}

// The first bucket whose tokens take the running count/mass to the target; base = before it.
int level0(const int64_t* count, const uint64_t* mass, const Target& t, Progress* base) {
  for (int b = 0; b < kDeadBucket; ++b) {
    const Progress next{base->count + count[b], base->mass + mass[b]};
    if (t.reached(next)) return b;  // an empty bucket cannot be the first to reach it
    *base = next;
  }
  LLAMA4_CHECK(false, "sample: selection target beyond the live tokens");
}

// The cut at the target position within `list` (id order; one key range that holds the target;
// `base` = progress of every token before the range). MSB-first radix over the 32-bit keys,
// then the tokens of the final key in id order. `base` ends as the progress through the cut.
Cut radix_select(std::vector<Cand>& list, Progress* base, const Target& t) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    int64_t count[256] = {};
    uint64_t mass[256] = {};
    for (const Cand& c : list) {
      const int d = (c.key >> shift) & 255;
      ++count[d];
      mass[d] += c.W;
    }
    int digit = -1;
    for (int d = 255; d >= 0 && digit < 0; --d) {
      const Progress next{base->count + count[d], base->mass + mass[d]};
      if (count[d] && t.reached(next)) digit = d;
      else *base = next;
    }
    LLAMA4_CHECK(digit >= 0, "sample: selection target beyond the candidates");
    size_t n = 0;
    for (const Cand& c : list)
      if (int((c.key >> shift) & 255) == digit) list[n++] = c;
    list.resize(n);
  }
  for (const Cand& c : list) {
    base->count += 1;
    base->mass += c.W;
    if (t.reached(*base)) return Cut{c.key, c.id};
  }
  LLAMA4_CHECK(false, "sample: selection target beyond the final key");
}

// The sampled token of a non-greedy row over y (max m). Sets *total to the sum of all weights.
int64_t draw(const float* y, int64_t V, float m, const SamplerRow& row, int F, int nt, Scratch& sc,
             uint64_t* total) {
  const int64_t nb = (V + kBlock - 1) / kBlock;
  sc.w.resize(size_t(V));
  sc.bucket.resize(size_t(V));
  sc.block.resize(size_t(nb));
  const bool top_k = row.top_k > 0 && row.top_k < V, top_p = row.top_p < 1.0f;
  // Bucket histograms for the level-0 selection: counts for top-k, mass for top-p (top-p after a
  // top-k cut works on the top-k tokens instead).
  const bool want_count = top_k, want_mass = top_p && !top_k;
  sc.hist_count.assign(want_count ? size_t(nt) * 512 : 0, 0);
  sc.hist_mass.assign(want_mass ? size_t(nt) * 512 : 0, 0);
  std::vector<uint64_t> part(size_t(nt), 0);
  std::vector<int64_t> live_part(size_t(nt), 0);
  for_chunks(V, nt, [&](int c, int64_t lo, int64_t hi) {
    const sampling::WeightsOut o{sc.w.data() + lo, sc.bucket.data() + lo, sc.block.data() + lo / kBlock,
                                 want_count ? sc.hist_count.data() + c * 512 : nullptr,
                                 want_mass ? sc.hist_mass.data() + c * 512 : nullptr};
    part[c] = sampling::weights(y + lo, hi - lo, m, row.temperature, F, o, &live_part[c]);
  });
  uint64_t s_all = 0;
  int64_t live = 0;
  for (int c = 0; c < nt; ++c) {
    s_all += part[c];
    live += live_part[c];
  }
  *total = s_all;
  int64_t count[256] = {};
  uint64_t mass[256] = {};
  for (size_t j = 0; j < sc.hist_count.size(); ++j) count[j % 256] += sc.hist_count[j];
  for (size_t j = 0; j < sc.hist_mass.size(); ++j) mass[j % 256] += sc.hist_mass[j];

  Cut cut;
  int b_k = kDeadBucket;
  if (top_k && live > row.top_k) {  // otherwise the k best include every token of weight > 0
    const Target t{false, row.top_k, 0};
    Progress base;
    b_k = level0(count, mass, t, &base);
    collect(y, V, F, nt, sc, b_k, b_k, [](uint32_t, int32_t) { return true; });
    cut = radix_select(sc.cand, &base, t);
  }
  if (top_p) {
    Progress base;
    if (cut.active()) {  // top-p over the top-k tokens: all of them are candidates
      const Cut k_cut = cut;
      collect(y, V, F, nt, sc, 0, b_k, [&](uint32_t key, int32_t i) { return k_cut.keeps(key, i); });
      uint64_t s_k = 0;
      for (const Cand& c : sc.cand) s_k += c.W;
      cut = radix_select(sc.cand, &base, Target{true, 0, top_p_threshold(row.top_p, s_k)});
    } else {
      if (!want_mass)  // top-k did not cut after all: the mass histogram is still to make
        for (int64_t i = 0; i < V; ++i) mass[sc.bucket[i]] += fixed_weight(sc.w[i], F);
      const Target t{true, 0, top_p_threshold(row.top_p, s_all)};
      const int b = level0(count, mass, t, &base);
      collect(y, V, F, nt, sc, b, b, [](uint32_t, int32_t) { return true; });
      cut = radix_select(sc.cand, &base, t);
    }
  }

  const float min_p = row.min_p;
  const bool filtered = cut.active() || min_p > 0.0f;
  if (filtered)
    for_chunks(V, nt, [&](int, int64_t lo, int64_t hi) {
      sampling::kept_block_sums(y + lo, sc.w.data() + lo, hi - lo, lo, cut.key, cut.id, min_p, F,
                                sc.block.data() + lo / kBlock);
    });
  uint64_t kept_total = 0;
  for (int64_t b = 0; b < nb; ++b) kept_total += sc.block[b];

  const uint64_t target =
      draw_target(sampler_draw_bits(row.seed, row.sample_index, row.token_index), kept_total);
  uint64_t cum = 0;
  int64_t b = 0;
  while (b < nb - 1 && cum + sc.block[b] <= target) cum += sc.block[b++];
  for (int64_t i = b * kBlock; i < std::min(V, (b + 1) * kBlock); ++i) {
    if (filtered && !(cut.keeps(order_key(y[i]), i) && sc.w[i] >= min_p)) continue;
    cum += fixed_weight(sc.w[i], F);
    if (cum > target) return i;
  }
  LLAMA4_CHECK(false, "sample: inverse CDF ran past the kept mass");
}

struct RowIo {
  int32_t* token;
  float* logprob;   // null: not asked
  int32_t* top_ids;  // [width]
  float* top_lps;
  int32_t* status;
  int64_t width;
};

void fail(const RowIo& io, SampleStatus st) {
  *io.token = -1;
  if (io.logprob) *io.logprob = kNaN;
  for (int64_t j = 0; j < io.width; ++j) {
    io.top_ids[j] = -1;
    io.top_lps[j] = kNaN;
  }
  *io.status = int32_t(st);
}

void sample_row(const float* x, int64_t V, const SamplerRow& row, const SamplerBatch& batch,
                int64_t r, int nt, const RowIo& io) {
  Scratch& sc = scratch();
  const sampling::ScanResult raw = scan_row(x, V, nt);
  if (raw.bad) return fail(io, SampleStatus::kNonFinite);
  if (raw.max == -kInf) return fail(io, SampleStatus::kNoFiniteLogit);
  const int F = fixed_bits(V);

  // Penalties on a copy (the raw logits stay for the logprobs).
  const float* y = x;
  sampling::ScanResult pen = raw;
  const int32_t p0 = batch.penalty_offsets[r], p1 = batch.penalty_offsets[r + 1];
  const bool penalized = p1 > p0 && (row.repetition_penalty != 1.0f || row.presence_penalty != 0.0f ||
                                     row.frequency_penalty != 0.0f);
  if (penalized) {
    sc.y.resize(size_t(V));
    for_chunks(V, nt, [&](int, int64_t lo, int64_t hi) {
      std::memcpy(sc.y.data() + lo, x + lo, size_t(hi - lo) * sizeof(float));
    });
    for (int32_t j = p0; j < p1; ++j) {
      const int32_t t = batch.penalty_tokens[j];
      const float v = penalize(x[t], row, batch.penalty_counts[j], batch.penalty_in_prompt[j] != 0);
      if (is_nan_or_pinf(v)) return fail(io, SampleStatus::kPenaltyOverflow);
      sc.y[t] = v;
    }
    y = sc.y.data();
    pen = scan_row(y, V, nt);
    if (pen.max == -kInf) return fail(io, SampleStatus::kNoFiniteLogit);
  }

  const bool greedy = effectively_greedy(row.temperature, pen.max, pen.min_finite);
  int64_t token;
  uint64_t s_sampling = 0;
  if (greedy) token = argmax_row(y, V, pen.max, nt);
  else token = draw(y, V, pen.max, row, F, nt, sc, &s_sampling);
  *io.token = int32_t(token);
  *io.status = int32_t(SampleStatus::kOk);
  if (row.logprobs < 0) {
    if (io.logprob) *io.logprob = kNaN;
    for (int64_t j = 0; j < io.width; ++j) {
      io.top_ids[j] = -1;
      io.top_lps[j] = -kInf;
    }
    return;
  }
  // Raw logprobs: the sampling pass already summed exp(x - max) when it saw the raw logits.
  const uint64_t s_raw = (!penalized && !greedy && row.temperature == 1.0f)
                             ? s_sampling : exp_sum_row(x, V, raw.max, F, nt);
  const double log_norm = log_normalizer(s_raw, F);
  *io.logprob = raw_logprob(x[token], raw.max, log_norm);
  const int n_top = std::min<int64_t>(row.logprobs, io.width);
  std::vector<std::pair<float, int32_t>> best;
  if (n_top > 0) {
    sc.tops.resize(size_t(nt));
    for_chunks(V, nt, [&](int c, int64_t lo, int64_t hi) {
      sampling::top_n(x + lo, hi - lo, lo, n_top, &sc.tops[c]);
    });
    for (int c = 0; c < nt; ++c) best.insert(best.end(), sc.tops[c].begin(), sc.tops[c].end());
    std::sort(best.begin(), best.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
  }
  for (int64_t j = 0; j < io.width; ++j) {
    const bool has = j < n_top && j < int64_t(best.size());
    io.top_ids[j] = has ? best[j].second : -1;
    io.top_lps[j] = has ? raw_logprob(best[j].first, raw.max, log_norm) : -kInf;
  }
}

}  // namespace

void sample(const TensorView& tokens, const TensorView& logprobs, const TensorView& top_ids,
            const TensorView& top_logprobs, const TensorView& status, const TensorView& logits,
            const SamplerBatch& batch) {
  const int64_t B = logits.size(0), V = logits.size(1), ld = logits.stride(0);
  const int64_t width = top_ids.data ? top_ids.size(1) : 0;
  const int nthreads = omp_get_max_threads();
  const float* base = logits.ptr<float>();
  auto run = [&](int64_t r, int nt) {
    const RowIo io{tokens.ptr<int32_t>() + r, logprobs.data ? logprobs.ptr<float>() + r : nullptr,
                   width ? top_ids.ptr<int32_t>() + r * width : nullptr,
                   width ? top_logprobs.ptr<float>() + r * width : nullptr, status.ptr<int32_t>() + r,
                   width};
    sample_row(base + r * ld, V, batch.rows[size_t(r)], batch, r, nt, io);
  };
  if (B >= nthreads && B > 1) {
    std::exception_ptr error;  // an exception must not leave an OpenMP region
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t r = 0; r < B; ++r) {
      try {
        run(r, 1);
      } catch (...) {
#pragma omp critical(llama4_sample_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
  } else {
    // Few rows: each row's passes split the vocabulary (small rows are not worth the threads).
    const int nt = V >= 4 * kBlock ? nthreads : 1;
    for (int64_t r = 0; r < B; ++r) run(r, nt);
  }
}

}  // namespace llama4::cpu
