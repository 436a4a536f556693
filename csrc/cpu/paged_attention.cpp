// CPU paged attention and cache writes.
//   out [T, H, d] = softmax(q' k^T * scale over each query's window) v, K/V read through the page
//   table from caches [num_pages, page_size, KV, d]; see llama4/ops.h for the full contract.
//
// Work is split into items (query tile, kv heads [g0, g1), kv split):
//  - a query tile is a run of consecutive batch entries of one sequence at consecutive positions
//    in one window (part of a prefill; a decode query is a tile of one). All R = H/KV query heads
//    of a kv head and all queries of the tile are the rows of that head in the item, so each K/V
//    row is loaded (and converted to fp32) once per item and reused by every row;
//  - decode tiles take all kv heads in one item (each page is then read as one contiguous block),
//    prefill tiles one kv head per item (more parallelism; their rows already amortize the reads);
//  - a kv split is a contiguous part of the tile's pages (flash-decoding): when there are fewer
//    items than ~2 per thread, long windows are split and the partial softmax states (running max
//    m, sum l, unnormalized accumulator) are merged afterwards, exactly as the online softmax would.
// Per row: online softmax over the window page by page, in fp32: scores q.k * scale, running max
// subtraction, weighted V sum (attention_micro.h); the output is divided by the sum and rounded
// once. Scratch is per thread and call, grown on first use (no allocation per page or item).
// FP8 caches: each K/V row of a (token, head) is read as float(e4m3) * its scale in fp32 — one
// product, so the CUDA kernel reads the same values — and written by quantize_fp8_row (the rule
// of quantize_fp8_rowwise, one row per token and head).
#include "cpu/paged_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "cpu/attention_micro.h"
#include "cpu/elem.h"
#include "cpu/fp8_row.h"
#include "cpu/vec8.h"
#include "llama4/error.h"
#include "llama4/mathfn.h"

namespace llama4::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kMaxTileRows = 64;      // rows (queries x heads of one kv head) per item
constexpr int64_t kMinPagesPerSplit = 8;  // a split below this costs more to merge than it saves
constexpr int64_t kMaxSplits = 64;

// ---- fp32 row helpers (vectorized by the compiler: omp simd, AVX2 from LLAMA4_CPU_FLAGS) ----

inline void to_f32(const float* src, float* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * 4); }
inline void to_f32(const bf16* src, float* dst, int64_t n) {
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_from_bits(uint32_t(s[i]) << 16);
}
inline void to_f32(const f16* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8)  // exact conversion, like f16_to_f32
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#endif
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i].bits);
}

// FP8 rows: float(e4m3) * scale (the e4m3 value from a table of the 256 exact conversions).
struct Fp8Table {
  float v[256];
  Fp8Table() {
    for (int i = 0; i < 256; ++i) v[i] = fp8e4m3_to_f32(uint8_t(i));
  }
};
inline void fp8_to_f32(const uint8_t* src, float scale, float* dst, int64_t n) {
  static const Fp8Table table;
  int64_t i = 0;
#if LLAMA4_VEC8
  const __m256 s = _mm256_set1_ps(scale);
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_mul_ps(vec8::load_e4m3(src + i), s));  // the table's values
#endif
  for (; i < n; ++i) dst[i] = table.v[src[i]] * scale;
}

// Pages are scattered, so the hardware prefetcher cannot see the next one coming: ask for the
// next page's rows of the item's kv heads while the current page is being worked on (n rows of
// `elems` elements, `stride` apart).
template <typename T>
inline void prefetch_rows(const T* kc, const T* vc, int64_t off, int64_t n, int64_t stride, int64_t elems) {
  const int64_t bytes = elems * int64_t(sizeof(T));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t x = 0; x < bytes; x += 64) {
      __builtin_prefetch(reinterpret_cast<const char*>(kc + off + j * stride) + x);
      __builtin_prefetch(reinterpret_cast<const char*>(vc + off + j * stride) + x);
    }
}

// Llama 4 temperature tuning, in fp32 in transformers' order of operations (llama4/mathfn.h, the
// same bits as the CUDA kernels).
inline float temperature(int64_t pos, const AttentionParams& prm) {
  return attention_temperature(pos, prm.attn_scale, prm.floor_scale);
}

inline int64_t window_start(int64_t pos, int64_t chunk) { return chunk > 0 ? pos / chunk * chunk : 0; }

// ---- work decomposition ----

struct Tile {
  int64_t t0 = 0, nq = 0;  // batch entries [t0, t0 + nq)
  int64_t seq = 0;         // row of the page table
  int64_t lo = 0, hi = 0;  // union of the windows: keys [lo, hi]
};

std::vector<Tile> make_tiles(const int32_t* qseq, const int32_t* qpos, int64_t T, int64_t chunk,
                             int64_t max_queries) {
  std::vector<Tile> tiles;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t p = qpos[t], lo = window_start(p, chunk);
    Tile* cur = tiles.empty() ? nullptr : &tiles.back();
    // Same sequence, next position, same window: the window union is exactly [lo, last pos].
    if (cur && cur->seq == qseq[t] && p == cur->hi + 1 && lo == cur->lo && cur->nq < max_queries) {
      cur->nq += 1;
      cur->hi = p;
    } else {
      tiles.push_back(Tile{t, 1, qseq[t], lo, p});
    }
  }
  return tiles;
}

// A work item: one tile, kv heads [g0, g1), one split of the tile's pages.
struct Item {
  int64_t tile, g0, g1, split;
};

// How many parts each window is split into: 1 unless there are fewer items than ~2 per thread.
int64_t choose_kv_splits(int64_t items, int threads, int64_t max_window_pages, int forced) {
  if (forced > 0) return std::max<int64_t>(1, std::min({int64_t(forced), max_window_pages, kMaxSplits}));
  if (items >= 2 * int64_t(threads)) return 1;
  const int64_t want = (2 * int64_t(threads) + items - 1) / items;
  return std::max<int64_t>(1, std::min({want, max_window_pages / kMinPagesPerSplit, kMaxSplits}));
}

// Decode tiles (one query) take all kv heads in one item: the item then reads each page as one
// contiguous block ([page_size, KV, d] rows), which streams from memory; per-head items would read
// d-sized pieces strided by KV*d, bound by memory latency. Prefill tiles reuse each K/V row across
// many queries, so they split by kv head for parallelism instead.
std::vector<Item> make_items(const std::vector<Tile>& tiles, int64_t KV, int64_t splits) {
  std::vector<Item> items;
  for (int64_t ti = 0; ti < int64_t(tiles.size()); ++ti) {
    const int64_t step = tiles[size_t(ti)].nq == 1 ? KV : 1;
    for (int64_t g = 0; g < KV; g += step)
      for (int64_t s = 0; s < splits; ++s) items.push_back(Item{ti, g, g + step, s});
  }
  return items;
}

// ---- one work item ----

struct Problem {
  int64_t T, H, KV, R, d, P, num_pages, max_pages, splits;
  const int32_t *page_table, *qpos;
  const float *k_scale, *v_scale;  // FP8 caches: [num_pages, P, KV]
  AttentionParams prm;
};

// Scratch of one thread, grown on demand and reused across its items.
struct Scratch {
  std::vector<float> q, acc, m, l, k, v, s;
  void fit(int64_t rows, int64_t d, int64_t P, int64_t heads) {
    auto grow = [](std::vector<float>& b, int64_t n) { if (int64_t(b.size()) < n) b.resize(size_t(n)); };
    grow(q, rows * d), grow(acc, rows * d), grow(m, rows), grow(l, rows);
    grow(k, P * heads * d), grow(v, P * heads * d), grow(s, rows * P);
  }
};

// Online-softmax step of one row over a block of scores s[0, n) (overwritten by the weights
// exp(s - m_new)): rescale the running sum and accumulator to the new max, add the block's sum.
// The block's weighted V rows are added afterwards for all rows at once (micro::pv_accumulate).
inline void softmax_block(float* s, int64_t n, float& m, float& l, float* acc, int64_t d) {
  float bm = kNegInf;
#pragma omp simd reduction(max : bm)
  for (int64_t j = 0; j < n; ++j) bm = std::max(bm, s[j]);
  const float mn = std::max(m, bm);
  const float corr = mn == m ? 1.f : std::exp(m - mn);  // 0 on the first block (m = -inf)
  l = l * corr + micro::exp_sub_sum(s, n, mn);
  m = mn;
  if (corr != 1.f) {
#pragma omp simd
    for (int64_t x = 0; x < d; ++x) acc[x] *= corr;
  }
}

// Rows of an item, head-major: row = (gi * nq + qi) * R + r <-> (query t0 + qi, head (g0 + gi) * R + r).
template <typename T>
void load_queries(const Problem& pb, const Tile& tile, const Item& it, const TensorView& q, float* qbuf) {
  using E = Elem<T>;
  const bool tune = pb.prm.attn_scale > 0.f;
  for (int64_t qi = 0; qi < tile.nq; ++qi) {
    const int64_t t = tile.t0 + qi;
    const float f = tune ? temperature(pb.qpos[t], pb.prm) : 1.f;
    for (int64_t gi = 0; gi < it.g1 - it.g0; ++gi)
      for (int64_t r = 0; r < pb.R; ++r) {
        float* qr = qbuf + ((gi * tile.nq + qi) * pb.R + r) * pb.d;
        to_f32(q.ptr<T>() + t * q.strides[0] + ((it.g0 + gi) * pb.R + r) * q.strides[1], qr, pb.d);
        if (tune)  // transformers: (q * scales).to(q.dtype), before the dot products
          for (int64_t x = 0; x < pb.d; ++x) qr[x] = E::round(qr[x] * f);
      }
  }
}

// One page block: keys [a, a + n) at kb/vb (row stride kst) for the rows of one kv head
// (qrow: their queries, m/l/acc: their softmax state; rows qi * R + r of this head).
inline void attend_block(const Problem& pb, const Tile& tile, int64_t a, int64_t n, const float* kb,
                         const float* vb, int64_t kst, const float* qrow, float* m, float* l, float* acc,
                         float* sbuf) {
  const int64_t d = pb.d, R = pb.R, P = pb.P, first_pos = tile.hi - tile.nq + 1;
  // Rows whose query sees key a at least: a suffix of the tile (positions increase).
  const int64_t qi0 = std::max<int64_t>(0, a - first_pos), r0 = qi0 * R, nrows = tile.nq * R - r0;
  float* S = sbuf + r0 * P;  // scores [nrows, n], row stride P
  micro::qk_scores(qrow + r0 * d, d, nrows, kb, kst, n, d, pb.prm.scale, S, P);
  for (int64_t qi = qi0; qi < tile.nq; ++qi) {
    const int64_t pos = first_pos + qi;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t row = qi * R + r;
      float* sr = sbuf + row * P;
      for (int64_t j = pos - a + 1; j < n; ++j) sr[j] = kNegInf;  // causal, within the page
      softmax_block(sr, n, m[row], l[row], acc + row * d, d);
    }
  }
  micro::pv_accumulate(S, P, nrows, vb, kst, n, d, acc + r0 * d, d);
}

// Runs one item; its unnormalized result is left in sc (m, l, acc). Returns the fault, if any.
// T: q's type; C: the cache's (T, or uint8_t for e4m3 with per-(token, head) scales).
template <typename T, typename C>
PageFault attend_item(const Problem& pb, const Tile& tile, const Item& it, const TensorView& q,
                      const C* kc, const C* vc, Scratch& sc) {
  const int64_t d = pb.d, P = pb.P, KV = pb.KV, ng = it.g1 - it.g0;
  const int64_t rows_g = tile.nq * pb.R, rows = ng * rows_g;
  sc.fit(rows, d, P, ng);
  load_queries<T>(pb, tile, it, q, sc.q.data());
  std::fill_n(sc.m.data(), rows, kNegInf);
  std::fill_n(sc.l.data(), rows, 0.f);
  std::fill_n(sc.acc.data(), rows * d, 0.f);

  const int64_t lp0 = tile.lo / P, npages = tile.hi / P - lp0 + 1;
  const int64_t sb = lp0 + npages * it.split / pb.splits, se = lp0 + npages * (it.split + 1) / pb.splits;
  const int32_t* table = pb.page_table + tile.seq * pb.max_pages;
  auto valid = [&](int64_t lp) { return lp < pb.max_pages && table[lp] >= 0 && table[lp] < pb.num_pages; };
  for (int64_t lp = sb; lp < se; ++lp) {
    const int64_t a = std::max(tile.lo, lp * P), b = std::min(tile.hi, lp * P + P - 1), n = b - a + 1;
    if (!valid(lp)) {  // report the first query of the tile whose window needs this page
      const int64_t qi = std::max<int64_t>(0, a - (tile.hi - tile.nq + 1));
      return PageFault{tile.t0 + qi, lp, lp < pb.max_pages ? table[lp] : -1};
    }
    if (lp + 1 < se && valid(lp + 1))
      prefetch_rows(kc, vc, (int64_t(table[lp + 1]) * P * KV + it.g0) * d, P, KV * d, ng * d);
    // Heads [g0, g1) of one key row are contiguous: rows of ng * d elements, stride KV * d.
    const int64_t base = ((table[lp] * P + (a - lp * P)) * KV + it.g0) * d;
    const float *kb, *vb;
    int64_t kst;
    if constexpr (std::is_same_v<C, float>) {
      kb = kc + base, vb = vc + base, kst = KV * d;  // fp32 pages are read in place
    } else if constexpr (std::is_same_v<C, uint8_t>) {
      const int64_t srow = base / d;  // the scale of (key a, head g0); rows of KV scales per key
      for (int64_t j = 0; j < n; ++j)
        for (int64_t gi = 0; gi < ng; ++gi) {
          const int64_t s = srow + j * KV + gi, dst = (j * ng + gi) * d;
          fp8_to_f32(kc + base + (j * KV + gi) * d, pb.k_scale[s], sc.k.data() + dst, d);
          fp8_to_f32(vc + base + (j * KV + gi) * d, pb.v_scale[s], sc.v.data() + dst, d);
        }
      kb = sc.k.data(), vb = sc.v.data(), kst = ng * d;
    } else {
      for (int64_t j = 0; j < n; ++j) {
        to_f32(kc + base + j * KV * d, sc.k.data() + j * ng * d, ng * d);
        to_f32(vc + base + j * KV * d, sc.v.data() + j * ng * d, ng * d);
      }
      kb = sc.k.data(), vb = sc.v.data(), kst = ng * d;
    }
    for (int64_t gi = 0; gi < ng; ++gi) {
      const int64_t r = gi * rows_g;
      attend_block(pb, tile, a, n, kb + gi * d, vb + gi * d, kst, sc.q.data() + r * d, sc.m.data() + r,
                   sc.l.data() + r, sc.acc.data() + r * d, sc.s.data());
    }
  }
  return PageFault{};
}

// Splits > 1: merge the partial states of each (query, head), rescaled to their common max.
template <typename T>
void merge_splits(const Problem& pb, const std::vector<float>& part_m, const std::vector<float>& part_l,
                  const std::vector<float>& part_acc, T* op) {
  using E = Elem<T>;
  const int64_t TH = pb.T * pb.H, d = pb.d;
#pragma omp parallel for schedule(static) if (TH * d > 32768)
  for (int64_t th = 0; th < TH; ++th) {
    float mx = kNegInf;
    for (int64_t s = 0; s < pb.splits; ++s) mx = std::max(mx, part_m[size_t(s * TH + th)]);
    float w[kMaxSplits];
    float total = 0.f;
    for (int64_t s = 0; s < pb.splits; ++s) {
      const float l = part_l[size_t(s * TH + th)];
      w[s] = l > 0.f ? std::exp(part_m[size_t(s * TH + th)] - mx) : 0.f;  // empty split: 0
      total += w[s] * l;
    }
    T* o = op + th * d;
    for (int64_t x = 0; x < d; ++x) {
      float v = 0.f;
      for (int64_t s = 0; s < pb.splits; ++s)
        if (w[s] != 0.f) v += w[s] * part_acc[size_t((s * TH + th) * d + x)];
      E::store(o, x, v / total);
    }
  }
}

template <typename T, typename C>
PageFault attention_impl(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                         const TensorView& v_cache, const TensorView& page_table,
                         const TensorView& query_seq, const TensorView& query_pos,
                         const AttentionParams& prm, const ops::KVScales& scales) {
  using E = Elem<T>;
  Problem pb{};
  pb.k_scale = scales.k.ptr<float>(), pb.v_scale = scales.v.ptr<float>();
  pb.T = q.size(0), pb.H = q.size(1), pb.d = q.size(2), pb.KV = k_cache.size(2);
  pb.R = pb.H / pb.KV, pb.P = k_cache.size(1), pb.num_pages = k_cache.size(0);
  pb.max_pages = page_table.size(1);
  pb.page_table = page_table.ptr<int32_t>(), pb.qpos = query_pos.ptr<int32_t>();
  pb.prm = prm;
  const std::vector<Tile> tiles = make_tiles(query_seq.ptr<int32_t>(), pb.qpos, pb.T, prm.chunk_size,
                                             std::max<int64_t>(1, kMaxTileRows / pb.R));
  int64_t max_window_pages = 1;
  for (const Tile& tl : tiles) max_window_pages = std::max(max_window_pages, tl.hi / pb.P - tl.lo / pb.P + 1);
  pb.splits = choose_kv_splits(int64_t(make_items(tiles, pb.KV, 1).size()), omp_get_max_threads(),
                               max_window_pages, prm.kv_splits);
  const std::vector<Item> items = make_items(tiles, pb.KV, pb.splits);

  // Split partials: [splits, T, H] m and l, [splits, T, H, d] unnormalized accumulators.
  const int64_t TH = pb.T * pb.H;
  std::vector<float> part_m, part_l, part_acc;
  if (pb.splits > 1) {
    part_m.assign(size_t(pb.splits * TH), kNegInf);
    part_l.assign(size_t(pb.splits * TH), 0.f);
    part_acc.assign(size_t(pb.splits * TH * pb.d), 0.f);
  }
  const C* kc = k_cache.ptr<C>();
  const C* vc = v_cache.ptr<C>();
  T* op = out.ptr<T>();
  PageFault fault;
  const int64_t n_items = int64_t(items.size());
#pragma omp parallel if (n_items > 1)
  {
    Scratch sc;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_items; ++i) {
      const Item& it = items[size_t(i)];
      const Tile& tile = tiles[size_t(it.tile)];
      const PageFault f = attend_item<T, C>(pb, tile, it, q, kc, vc, sc);
      if (f.query >= 0) {
#pragma omp critical(llama4_paged_attention_fault)
        if (fault.query < 0 || f.query < fault.query) fault = f;
        continue;
      }
      for (int64_t row = 0; row < (it.g1 - it.g0) * tile.nq * pb.R; ++row) {
        const int64_t gi = row / (tile.nq * pb.R), qi = row / pb.R % tile.nq;
        const int64_t t = tile.t0 + qi, h = (it.g0 + gi) * pb.R + row % pb.R;
        const float* acc = sc.acc.data() + row * pb.d;
        if (pb.splits == 1) {
          const float inv = 1.f / sc.l[size_t(row)];
          T* o = op + (t * pb.H + h) * pb.d;
          for (int64_t x = 0; x < pb.d; ++x) E::store(o, x, acc[x] * inv);
        } else {
          const int64_t idx = it.split * TH + t * pb.H + h;
          part_m[size_t(idx)] = sc.m[size_t(row)];
          part_l[size_t(idx)] = sc.l[size_t(row)];
          std::memcpy(part_acc.data() + idx * pb.d, acc, size_t(pb.d) * 4);
        }
      }
    }
  }
  if (fault.query < 0 && pb.splits > 1) merge_splits<T>(pb, part_m, part_l, part_acc, op);
  return fault;
}

// ---- cache write ----

// FP8: every (token, head) row of k and v quantized with its own scale.
template <typename T>
void cache_write_fp8_impl(const TensorView& k_cache, const TensorView& v_cache, const TensorView& k,
                          const TensorView& v, const TensorView& slots, const ops::KVScales& scales) {
  const int64_t T_ = k.size(0), KV = k.size(1), d = k.size(2);
  const int32_t* sl = slots.ptr<int32_t>();
  uint8_t* kc = k_cache.ptr<uint8_t>();
  uint8_t* vc = v_cache.ptr<uint8_t>();
  float* ks = scales.k.ptr<float>();
  float* vs = scales.v.ptr<float>();
#pragma omp parallel for schedule(static) if (T_ * KV * d > 65536)
  for (int64_t t = 0; t < T_; ++t) {
    if (sl[t] < 0) continue;
    for (int64_t g = 0; g < KV; ++g) {
      const int64_t row = int64_t(sl[t]) * KV + g;  // [page, offset, head] flattened
      ks[row] = quantize_fp8_row(k.ptr<T>() + t * k.strides[0] + g * k.strides[1], d, 0.f, kc + row * d);
      vs[row] = quantize_fp8_row(v.ptr<T>() + t * v.strides[0] + g * v.strides[1], d, 0.f, vc + row * d);
    }
  }
}

template <typename T>
void cache_write_impl(const TensorView& k_cache, const TensorView& v_cache, const TensorView& k,
                      const TensorView& v, const TensorView& slots) {
  const int64_t T_ = k.size(0), KV = k.size(1), d = k.size(2);
  const int32_t* sl = slots.ptr<int32_t>();
  const size_t row_bytes = size_t(d) * sizeof(T);
  T* kc = k_cache.ptr<T>();
  T* vc = v_cache.ptr<T>();
#pragma omp parallel for schedule(static) if (T_ * KV * d > 65536)
  for (int64_t t = 0; t < T_; ++t) {
    if (sl[t] < 0) continue;
    for (int64_t g = 0; g < KV; ++g) {
      const int64_t dst = (int64_t(sl[t]) * KV + g) * d;  // [page, offset] flattened = slot
      std::memcpy(kc + dst, k.ptr<T>() + t * k.strides[0] + g * k.strides[1], row_bytes);
      std::memcpy(vc + dst, v.ptr<T>() + t * v.strides[0] + g * v.strides[1], row_bytes);
    }
  }
}

}  // namespace

void cache_write(const TensorView& k_cache, const TensorView& v_cache, const TensorView& k,
                 const TensorView& v, const TensorView& slots, const ops::KVScales& scales) {
  const int64_t num_slots = k_cache.size(0) * k_cache.size(1);
  const int32_t* sl = slots.ptr<int32_t>();
  for (int64_t t = 0; t < slots.size(0); ++t)
    LLAMA4_CHECK_ARG(sl[t] >= -1 && sl[t] < num_slots, "cache_write: 'slots[", t, "]' = ", sl[t],
                     " is out of range [-1, ", num_slots, ") (num_pages * page_size)");
  if (k_cache.dtype == DType::F8E4M3) {
    LLAMA4_DISPATCH_ACT(k.dtype, "cache_write", cache_write_fp8_impl, k_cache, v_cache, k, v, slots, scales);
    return;
  }
  LLAMA4_DISPATCH_ACT(k_cache.dtype, "cache_write", cache_write_impl, k_cache, v_cache, k, v, slots);
}

PageFault paged_attention(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                          const TensorView& v_cache, const TensorView& page_table,
                          const TensorView& query_seq, const TensorView& query_pos,
                          const AttentionParams& params, const ops::KVScales& scales) {
  PageFault fault;
  const bool fp8 = k_cache.dtype == DType::F8E4M3;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    if (fp8)
      fault = attention_impl<T, uint8_t>(out, q, k_cache, v_cache, page_table, query_seq, query_pos, params, scales);
    else
      fault = attention_impl<T, T>(out, q, k_cache, v_cache, page_table, query_seq, query_pos, params, scales);
  };
  switch (q.dtype) {
    case DType::F32: run(float{}); break;
    case DType::BF16: run(bf16{}); break;
    case DType::F16: run(f16{}); break;
    default: throw TypeError(detail::concat("paged_attention: unsupported dtype ", dtype_name(q.dtype)));
  }
  return fault;
}

}  // namespace llama4::cpu
