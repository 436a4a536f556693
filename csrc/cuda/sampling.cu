// CUDA sampler, the twin of cpu/sampling.cpp (contract and exactness argument:
// llama4/sampling.h). One block per row. Every per-token value (penalized logit, scaled logit,
// weight, fixed-point weight, bucket, order key) comes from core/sampling_arith.h, as on the CPU;
// every sum over tokens is an exact integer, and each selection replays the CPU's decisions:
//   scan (max, smallest finite, NaN/+inf) -> penalties into a row buffer in the workspace ->
//   greedy argmax, or: weights pass (1/8-nat bucket histograms) -> top-k / top-p boundaries by a
//   radix select (the bucket that holds the boundary, then 8 key bits per pass over the row,
//   then the tokens of the final key in id order) -> kept mass -> inverse CDF in id order.
//   Raw logprobs: the exact fixed-point log-sum-exp; top-N by the same radix select on the raw
//   logits, the N tokens then sorted in shared memory.
// Weights are recomputed in each pass instead of stored (a row is 0.8 MB at V = 202048 and stays
// in L2; exp_weight is a dozen flops). The batch's arrays travel in one asynchronous copy from a
// pinned staging buffer into the workspace, so nothing here waits for the GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>

#include "core/sampling_arith.h"
#include "cuda/common.cuh"
#include "cuda/runtime.h"
#include "cuda/sampling.h"

namespace llama4::cuda {

namespace {

using namespace llama4::sampling;

constexpr int kThreads = 512;  // one block per row
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- the batch in device memory ----------------------------------------------------------------

// Byte offsets of the batch's arrays in the workspace. The part before `ybuf` is uploaded as one
// block; `ybuf` holds a penalized copy of the logits for each row with active penalty entries.
struct Layout {
  size_t rows, offsets, tokens, counts, in_prompt, buffer_index, ybuf, upload, total;
};

constexpr size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// Whether row r gets a penalized copy of its logits: the one place that decides it here (the
// CPU kernel's test, cpu/sampling.cpp sample_row).
bool penalized(const SamplerBatch& b, size_t r) {
  const SamplerRow& row = b.rows[r];
  const bool active = row.repetition_penalty != 1.0f || row.presence_penalty != 0.0f ||
                      row.frequency_penalty != 0.0f;
  return active && b.penalty_offsets[r + 1] > b.penalty_offsets[r];
}

Layout layout(int64_t vocab, const SamplerBatch& b) {
  const size_t B = b.rows.size(), nnz = b.penalty_tokens.size();
  size_t n_pen = 0;
  for (size_t r = 0; r < B; ++r) n_pen += size_t(penalized(b, r));
  Layout L{};
  size_t off = 0;
  L.rows = off;
  off += align256(B * sizeof(SamplerRow));
  L.offsets = off;
  off += align256((B + 1) * sizeof(int32_t));
  L.tokens = off;
  off += align256(nnz * sizeof(int32_t));
  L.counts = off;
  off += align256(nnz * sizeof(int32_t));
  L.in_prompt = off;
  off += align256(nnz);
  L.buffer_index = off;
  off += align256(B * sizeof(int32_t));
  L.upload = off;
  L.ybuf = off;
  off += n_pen * size_t(vocab) * sizeof(float);
  L.total = off;
  return L;
}

// Pinned staging buffers for the upload, a few per device in rotation: a slot is refilled only
// after the copy that last read it has finished (its event; normally long done, so this does not
// wait in practice). Pageable memory would let cudaMemcpyAsync synchronize.
constexpr int kStagingSlots = 4;
struct StagingSlot {
  void* host = nullptr;
  size_t cap = 0;
  cudaEvent_t done = nullptr;
};
struct DeviceStaging {
  std::mutex mu;
  StagingSlot slot[kStagingSlots];
  int next = 0;
};
DeviceStaging& staging(int device) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<DeviceStaging>> per_device;  // never freed: process-wide
  std::lock_guard<std::mutex> lock(mu);
  auto& s = per_device[device];
  if (!s) s = std::make_unique<DeviceStaging>();
  return *s;
}

void upload(void* dst, const SamplerBatch& b, const Layout& L, int device) {
  DeviceStaging& st = staging(device);
  std::lock_guard<std::mutex> lock(st.mu);
  StagingSlot& s = st.slot[st.next];
  st.next = (st.next + 1) % kStagingSlots;
  if (s.done) LLAMA4_CUDA_CHECK(cudaEventSynchronize(s.done));
  else LLAMA4_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  if (s.cap < L.upload) {
    const size_t cap = std::max<size_t>({L.upload, 2 * s.cap, size_t(1) << 16});
    if (s.host) LLAMA4_CUDA_CHECK(cudaFreeHost(s.host));
    s.host = nullptr;
    s.cap = 0;
    LLAMA4_CUDA_CHECK(cudaMallocHost(&s.host, cap));
    s.cap = cap;
  }
  char* h = static_cast<char*>(s.host);
  const size_t B = b.rows.size(), nnz = b.penalty_tokens.size();
  std::memcpy(h + L.rows, b.rows.data(), B * sizeof(SamplerRow));
  std::memcpy(h + L.offsets, b.penalty_offsets.data(), (B + 1) * sizeof(int32_t));
  if (nnz) {
    std::memcpy(h + L.tokens, b.penalty_tokens.data(), nnz * sizeof(int32_t));
    std::memcpy(h + L.counts, b.penalty_counts.data(), nnz * sizeof(int32_t));
    std::memcpy(h + L.in_prompt, b.penalty_in_prompt.data(), nnz);
  }
  int32_t* index = reinterpret_cast<int32_t*>(h + L.buffer_index);
  int32_t n_pen = 0;
  for (size_t r = 0; r < B; ++r) index[r] = penalized(b, r) ? n_pen++ : -1;
  LLAMA4_CUDA_CHECK(cudaMemcpyAsync(dst, h, L.upload, cudaMemcpyHostToDevice, 0));
  LLAMA4_CUDA_CHECK(cudaEventRecord(s.done, 0));
}

// ---- block-wide building blocks --------------------------------------------------------------

// Every thread gets the same result: warps reduce with an xor butterfly, then every thread
// combines the warp results in warp order. Op is exact here (integer sums, max, min), so the
// tree gives the CPU's value. Has barriers: every thread of the block must call it.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op) {
  __shared__ T part[kWarps];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFull, v, o));
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  T r = part[0];
  for (int w = 1; w < kWarps; ++w) r = op(r, part[w]);
  __syncthreads();
  return r;
}
template <typename T>
__device__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};
struct Min {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a < b ? a : b; }
};

// Running count and fixed-point mass of a walk through the order (cpu/sampling.cpp's Progress).
struct Progress {
  long long count;
  unsigned long long mass;
};
struct Target {
  bool by_mass;
  long long k;
  double threshold;
  __device__ bool reached(const Progress& p) const {
    return by_mass ? mass_reached(p.mass, threshold) : p.count >= k;
  }
};
// The kept prefix of the order (y descending, id ascending), as on the CPU.
struct Cut {
  uint32_t key;
  int32_t id;
  __device__ bool active() const { return key != 0 || id != INT_MAX; }
  __device__ bool keeps(uint32_t k, int64_t i) const { return k > key || (k == key && i <= id); }
};
__device__ Cut no_cut() { return Cut{0, INT_MAX}; }

// The first index i (id order) at which base + sum_{j <= i} inc(j) reaches the target, where
// inc(j) is (1, W) for the tokens being walked and (0, 0) otherwise; -1 if none. Each warp sums
// one contiguous chunk (coalesced), the warp sums locate the chunk, and that warp walks it 32
// tokens at a time with a warp scan. The sums are exact, so this is the CPU's sequential walk.
template <typename Inc, typename Reached>
__device__ int64_t ordered_first(int64_t V, Progress base, const Inc& inc, const Reached& reached) {
  __shared__ long long w_count[kWarps];
  __shared__ unsigned long long w_mass[kWarps];
  __shared__ long long found;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t chunk = ((V + kWarps - 1) / kWarps + 31) / 32 * 32;
  const int64_t lo = V < warp * chunk ? V : warp * chunk, hi = V < lo + chunk ? V : lo + chunk;
  Progress mine{0, 0};
  for (int64_t i = lo + lane; i < hi; i += 32) {
    const Progress d = inc(i);
    mine.count += d.count;
    mine.mass += d.mass;
  }
  mine.count = warp_sum(mine.count);
  mine.mass = warp_sum(mine.mass);
  if (lane == 0) {
    w_count[warp] = mine.count;
    w_mass[warp] = mine.mass;
  }
  if (threadIdx.x == 0) found = -1;
  __syncthreads();
  int target_warp = -1;
  Progress before = base;
  for (int w = 0; w < kWarps; ++w) {
    const Progress next{before.count + w_count[w], before.mass + w_mass[w]};
    if (reached(next)) {
      target_warp = w;
      break;
    }
    before = next;
  }
  if (warp == target_warp) {
    Progress run = before;
    for (int64_t i0 = lo; i0 < hi; i0 += 32) {
      const int64_t i = i0 + lane;
      Progress d = i < hi ? inc(i) : Progress{0, 0};
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {  // inclusive scan over the 32 lanes
        const long long c = __shfl_up_sync(kFull, d.count, o);
        const unsigned long long m = __shfl_up_sync(kFull, d.mass, o);
        if (lane >= o) {
          d.count += c;
          d.mass += m;
        }
      }
      const unsigned hit = __ballot_sync(kFull, i < hi && reached(Progress{run.count + d.count, run.mass + d.mass}));
      if (hit) {  // the same in every lane: the loop ends together
        if (lane == __ffs(hit) - 1) found = i;
        break;
      }
      run.count += __shfl_sync(kFull, d.count, 31);
      run.mass += __shfl_sync(kFull, d.mass, 31);
    }
  }
  __syncthreads();
  const int64_t result = found;
  __syncthreads();  // `found` and the warp sums may be reused by the next call
  return result;
}

// Shared histograms of the selections: 256 counts and fixed-point masses.
struct Hist {
  unsigned count[256];
  unsigned long long mass[256];
};

__device__ void clear(Hist& h) {
  __syncthreads();  // earlier readers are done
  for (int j = threadIdx.x; j < 256; j += kThreads) {
    h.count[j] = 0;
    h.mass[j] = 0;
  }
  __syncthreads();
}
__device__ void add(Hist& h, int d, uint64_t W) {
  atomicAdd(&h.count[d], 1u);
  if (W) atomicAdd(&h.mass[d], (unsigned long long)W);
}

// The first bucket whose tokens take the progress to the target (cpu/sampling.cpp level0).
__device__ int level0(const Hist& h, const Target& t, Progress* base) {
  for (int b = 0; b < kDeadBucket; ++b) {
    const Progress next{base->count + h.count[b], base->mass + h.mass[b]};
    if (t.reached(next)) return b;
    *base = next;
  }
  __trap();  // an invariant broke (the CPU raises here)
  return -1;
}

// The cut at the target among the tokens item(i) selects (cpu/sampling.cpp radix_select): MSB-first
// over the 32-bit keys, 8 bits per pass over the row, then the tokens of the final key in id
// order. item(i, &key, &W) -> whether token i is a candidate.
template <typename Item>
__device__ Cut radix_select(int64_t V, const Item& item, Progress base, const Target& t, Hist& h) {
  uint32_t prefix = 0, mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    clear(h);
    for (int64_t i = threadIdx.x; i < V; i += kThreads) {
      uint32_t key;
      uint64_t W;
      if (item(i, &key, &W) && (key & mask) == prefix) add(h, int((key >> shift) & 255u), W);
    }
    __syncthreads();
    int digit = -1;
    for (int d = 255; d >= 0 && digit < 0; --d) {
      const Progress next{base.count + h.count[d], base.mass + h.mass[d]};
      if (h.count[d] && t.reached(next)) digit = d;
      else base = next;
    }
    if (digit < 0) __trap();
    prefix |= uint32_t(digit) << shift;
    mask |= 0xFFu << shift;
  }
  const int64_t id = ordered_first(
      V, base,
      [&](int64_t i) {
        uint32_t key;
        uint64_t W;
        return item(i, &key, &W) && key == prefix ? Progress{1, W} : Progress{0, 0};
      },
      [&](const Progress& p) { return t.reached(p); });
  if (id < 0) __trap();
  return Cut{prefix, int32_t(id)};
}

// ---- the kernel --------------------------------------------------------------------------------

struct Args {
  const float* logits;
  int64_t ld, V;
  const char* ws;  // the uploaded batch (Layout)
  float* ybuf;
  int32_t* tokens;
  float* logprobs;  // null: no row asks
  int32_t* top_ids;
  float* top_lps;
  int32_t* status;
  int64_t width;
  Layout L;
};

__device__ void write_fail(const Args& a, int64_t r, SampleStatus st) {
  const float nan = __int_as_float(0x7fc00000);
  if (threadIdx.x == 0) {
    a.tokens[r] = -1;
    if (a.logprobs) a.logprobs[r] = nan;
    a.status[r] = int32_t(st);
  }
  for (int64_t j = threadIdx.x; j < a.width; j += kThreads) {
    a.top_ids[r * a.width + j] = -1;
    a.top_lps[r * a.width + j] = nan;
  }
}

struct Scan {
  float max, min_finite;
  int bad;
};
__device__ Scan scan(const float* x, int64_t V) {
  Scan s{-kInf, kInf, 0};
  for (int64_t i = threadIdx.x; i < V; i += kThreads) {
    const float v = x[i];
    s.bad |= int(is_nan_or_pinf(v));
    if (v > s.max) s.max = v;
    if (v < s.min_finite && v != -kInf) s.min_finite = v;
  }
  s.max = block_reduce(s.max, Max{});
  s.min_finite = block_reduce(s.min_finite, Min{});
  s.bad = block_reduce(s.bad, Sum{});
  return s;
}

// The sampled token of a non-greedy row over y (max m); cpu/sampling.cpp draw().
__device__ int64_t draw(const float* y, int64_t V, float m, const SamplerRow& row, int F, Hist& h) {
  const float T = row.temperature, cut_s = live_cut(F);
  auto token = [&](int64_t i, float* w, uint64_t* W, int* b) {
    const float s = scaled_logit(y[i], m, T);
    *w = exp_weight(s);
    *W = fixed_weight(*w, F);
    *b = bucket_of(s, cut_s);
  };
  const bool top_k = row.top_k > 0 && row.top_k < V, top_p = row.top_p < 1.0f;
  clear(h);
  unsigned long long s_all = 0;
  long long live = 0;
  for (int64_t i = threadIdx.x; i < V; i += kThreads) {
    float w;
    uint64_t W;
    int b;
    token(i, &w, &W, &b);
    s_all += W;
    if (b != kDeadBucket) {
      ++live;
      add(h, b, W);
    }
  }
  s_all = block_reduce(s_all, Sum{});  // its barriers also complete the histograms
  live = block_reduce(live, Sum{});

  Cut cut = no_cut();
  int b_k = kDeadBucket;
  if (top_k && live > row.top_k) {
    const Target t{false, row.top_k, 0};
    Progress base{0, 0};
    b_k = level0(h, t, &base);
    cut = radix_select(V, [&](int64_t i, uint32_t* key, uint64_t* W) {
      float w;
      int b;
      token(i, &w, W, &b);
      *key = order_key(y[i]);
      return b == b_k;
    }, base, t, h);
  }
  if (top_p) {
    if (cut.active()) {  // top-p over the top-k tokens: all of them are candidates
      const Cut k_cut = cut;
      auto in_top_k = [&](int64_t i, uint32_t* key, uint64_t* W) {
        float w;
        int b;
        token(i, &w, W, &b);
        *key = order_key(y[i]);
        return b <= b_k && k_cut.keeps(*key, i);
      };
      unsigned long long s_k = 0;
      for (int64_t i = threadIdx.x; i < V; i += kThreads) {
        uint32_t key;
        uint64_t W;
        if (in_top_k(i, &key, &W)) s_k += W;
      }
      s_k = block_reduce(s_k, Sum{});
      cut = radix_select(V, in_top_k, Progress{0, 0}, Target{true, 0, top_p_threshold(row.top_p, s_k)}, h);
    } else {
      const Target t{true, 0, top_p_threshold(row.top_p, s_all)};
      Progress base{0, 0};
      const int b_p = level0(h, t, &base);
      cut = radix_select(V, [&](int64_t i, uint32_t* key, uint64_t* W) {
        float w;
        int b;
        token(i, &w, W, &b);
        *key = order_key(y[i]);
        return b == b_p;
      }, base, t, h);
    }
  }

  const float min_p = row.min_p;
  auto kept = [&](int64_t i) {
    float w;
    uint64_t W;
    int b;
    token(i, &w, &W, &b);
    return cut.keeps(order_key(y[i]), i) && w >= min_p ? Progress{1, W} : Progress{0, 0};
  };
  unsigned long long kept_total = 0;
  for (int64_t i = threadIdx.x; i < V; i += kThreads) kept_total += kept(i).mass;
  kept_total = block_reduce(kept_total, Sum{});
  const uint64_t target =
      draw_target(sampler_draw_bits(row.seed, row.sample_index, row.token_index), kept_total);
  const int64_t tok = ordered_first(V, Progress{0, 0}, kept,
                                    [&](const Progress& p) { return p.mass > target; });
  if (tok < 0) __trap();  // the inverse CDF ran past the kept mass
  return tok;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(Args a) {
  __shared__ Hist h;
  __shared__ float top_v[kMaxLogprobs];
  __shared__ int32_t top_i[kMaxLogprobs];
  __shared__ int n_found;
  const int64_t r = blockIdx.x, V = a.V;
  const SamplerRow row = reinterpret_cast<const SamplerRow*>(a.ws + a.L.rows)[r];
  const float* x = a.logits + r * a.ld;

  const Scan raw = scan(x, V);
  if (raw.bad) return write_fail(a, r, SampleStatus::kNonFinite);
  if (raw.max == -kInf) return write_fail(a, r, SampleStatus::kNoFiniteLogit);
  const int F = fixed_bits(V);

  // Penalties into the row's buffer (the raw logits stay for the logprobs).
  const float* y = x;
  Scan pen = raw;
  const int32_t slot = reinterpret_cast<const int32_t*>(a.ws + a.L.buffer_index)[r];
  if (slot >= 0) {
    float* yb = a.ybuf + int64_t(slot) * V;
    for (int64_t i = threadIdx.x; i < V; i += kThreads) yb[i] = x[i];
    __syncthreads();
    const int32_t* off = reinterpret_cast<const int32_t*>(a.ws + a.L.offsets);
    const int32_t* tok = reinterpret_cast<const int32_t*>(a.ws + a.L.tokens);
    const int32_t* cnt = reinterpret_cast<const int32_t*>(a.ws + a.L.counts);
    const uint8_t* in_prompt = reinterpret_cast<const uint8_t*>(a.ws + a.L.in_prompt);
    int overflow = 0;
    for (int32_t j = off[r] + int32_t(threadIdx.x); j < off[r + 1]; j += kThreads) {
      const int32_t t = tok[j];  // distinct within the row (checked by the op): no write races
      const float v = penalize(x[t], row, cnt[j], in_prompt[j] != 0);
      overflow |= int(is_nan_or_pinf(v));
      yb[t] = v;
    }
    overflow = block_reduce(overflow, Sum{});  // its barriers publish the buffer's writes
    if (overflow) return write_fail(a, r, SampleStatus::kPenaltyOverflow);
    y = yb;
    pen = scan(y, V);
    if (pen.max == -kInf) return write_fail(a, r, SampleStatus::kNoFiniteLogit);
  }

  int64_t token;
  if (effectively_greedy(row.temperature, pen.max, pen.min_finite)) {
    int first = INT_MAX;  // argmax, ties to the lowest id
    for (int64_t i = threadIdx.x; i < V; i += kThreads)
      if (y[i] == pen.max) {
        first = int(i);
        break;
      }
    token = block_reduce(first, Min{});
  } else {
    token = draw(y, V, pen.max, row, F, h);
  }
  if (threadIdx.x == 0) {
    a.tokens[r] = int32_t(token);
    a.status[r] = int32_t(SampleStatus::kOk);
  }
  if (row.logprobs < 0) {
    if (threadIdx.x == 0 && a.logprobs) a.logprobs[r] = __int_as_float(0x7fc00000);
    for (int64_t j = threadIdx.x; j < a.width; j += kThreads) {
      a.top_ids[r * a.width + j] = -1;
      a.top_lps[r * a.width + j] = -kInf;
    }
    return;
  }
  // Raw logprobs: exact fixed-point sum of exp(x - max).
  unsigned long long s_raw = 0;
  for (int64_t i = threadIdx.x; i < V; i += kThreads)
    s_raw += fixed_weight(exp_weight(scaled_logit(x[i], raw.max, 1.0f)), F);
  s_raw = block_reduce(s_raw, Sum{});
  const double log_norm = log_normalizer(s_raw, F);
  if (threadIdx.x == 0) a.logprobs[r] = raw_logprob(x[token], raw.max, log_norm);
  const int n_top = int(row.logprobs < a.width ? row.logprobs : a.width);
  int found = 0;
  if (n_top > 0) {  // the n_top best raw logits (value descending, id ascending)
    const int64_t k = n_top < V ? n_top : V;
    auto all = [&](int64_t i, uint32_t* key, uint64_t* W) {
      *key = order_key(x[i]);
      *W = 0;
      return true;
    };
    const Cut top = radix_select(V, all, Progress{0, 0}, Target{false, k, 0}, h);
    if (threadIdx.x == 0) n_found = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < V; i += kThreads)
      if (top.keeps(order_key(x[i]), i)) {
        const int s = atomicAdd(&n_found, 1);
        if (s < kMaxLogprobs) {
          top_v[s] = x[i];
          top_i[s] = int32_t(i);
        }
      }
    __syncthreads();
    found = min(n_found, int(k));
    if (threadIdx.x == 0)  // at most 20 entries: insertion sort
      for (int s = 1; s < found; ++s)
        for (int j = s; j > 0; --j) {
          const bool before = top_v[j] > top_v[j - 1] || (top_v[j] == top_v[j - 1] && top_i[j] < top_i[j - 1]);
          if (!before) break;
          const float v = top_v[j];
          const int32_t id = top_i[j];
          top_v[j] = top_v[j - 1];
          top_i[j] = top_i[j - 1];
          top_v[j - 1] = v;
          top_i[j - 1] = id;
        }
    __syncthreads();
  }
  for (int64_t j = threadIdx.x; j < a.width; j += kThreads) {
    const bool has = j < found;
    a.top_ids[r * a.width + j] = has ? top_i[j] : -1;
    a.top_lps[r * a.width + j] = has ? raw_logprob(top_v[j], raw.max, log_norm) : -kInf;
  }
}

}  // namespace

size_t sample_workspace_bytes(int64_t vocab, const SamplerBatch& batch) {
  return layout(vocab, batch).total;
}

void sample(const TensorView& tokens, const TensorView& logprobs, const TensorView& top_ids,
            const TensorView& top_logprobs, const TensorView& status, const TensorView& logits,
            const SamplerBatch& batch, void* workspace) {
  const int64_t B = logits.size(0), V = logits.size(1);
  if (B == 0) return;
  const int device = logits.device.index;
  DeviceGuard guard(device);
  const Layout L = layout(V, batch);
  std::shared_ptr<void> owned;  // freed on return (cudaFree waits for the kernel)
  if (!workspace) {
    owned = allocate(L.total, device);
    workspace = owned.get();
  }
  upload(workspace, batch, L, device);
  Args a;
  a.logits = logits.ptr<float>();
  a.ld = logits.stride(0);
  a.V = V;
  a.ws = static_cast<const char*>(workspace);
  a.ybuf = reinterpret_cast<float*>(static_cast<char*>(workspace) + L.ybuf);
  a.tokens = tokens.ptr<int32_t>();
  a.logprobs = logprobs.data ? logprobs.ptr<float>() : nullptr;
  a.width = top_ids.data ? top_ids.size(1) : 0;
  a.top_ids = a.width ? top_ids.ptr<int32_t>() : nullptr;
  a.top_lps = a.width ? top_logprobs.ptr<float>() : nullptr;
  a.status = status.ptr<int32_t>();
  a.L = L;
  sample_kernel<<<unsigned(B), kThreads>>>(a);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace llama4::cuda
