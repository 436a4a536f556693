// The BPE rank table (tiktoken file parsing, a hash index of byte strings) and the merge loop.
#include "text/bpe.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <utility>

#include "llama4/error.h"

namespace llama4::text {
namespace {

// A fast hash for short byte strings (tokens average ~7 bytes): 8 bytes per multiply-xorshift.
inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  // A full mix: a bare multiply would leave the slot bits blind to the last bytes, and CJK
  // tokens sharing a prefix would collide.
  return fmix64(h ^ w);
}

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with '=' padding; false on any other form.
bool base64_decode(std::string_view s, std::string& out) {
  out.clear();
  if (s.empty() || s.size() % 4 != 0) return false;
  size_t pad = 0;
  while (pad < 2 && s[s.size() - 1 - pad] == '=') ++pad;
  const size_t body = s.size() - pad;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < body; ++i) {
    const int v = base64_value(static_cast<unsigned char>(s[i]));
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return true;  // like Python's b64decode, leftover bits of the last group are ignored
}

bool parse_rank(std::string_view s, int64_t& rank) {
  if (s.empty() || s.size() > 10) return false;
  rank = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    rank = rank * 10 + (c - '0');
  }
  return true;
}

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

RankTable RankTable::load_tiktoken(const std::string& path, int32_t expected_ranks) {
  std::error_code ec;
  std::ifstream f(path, std::ios::binary);
  LLAMA4_CHECK_ARG(std::filesystem::is_regular_file(path, ec) && f.good(), "tokenizer file ", path,
                   " cannot be read (missing or not a file)");
  std::stringstream buf;
  buf << f.rdbuf();
  const std::string data = buf.str();

  std::vector<std::string> by_rank(static_cast<size_t>(expected_ranks));
  std::vector<int64_t> line_of(static_cast<size_t>(expected_ranks), 0);
  int64_t count = 0, max_rank = -1;
  std::string bytes;
  size_t pos = 0;
  for (int64_t lineno = 1; pos < data.size(); ++lineno) {
    size_t eol = data.find('\n', pos);
    if (eol == std::string::npos) eol = data.size();
    const std::string_view line(data.data() + pos, eol - pos);
    pos = eol + 1;
    std::vector<std::string_view> fields;  // split on whitespace, as Python's str.split()
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && is_blank(line[i])) ++i;
      size_t j = i;
      while (j < line.size() && !is_blank(line[j])) ++j;
      if (j > i) fields.push_back(line.substr(i, j - i));
      i = j;
    }
    if (fields.empty()) continue;  // blank line
    const std::string where = path + ":" + std::to_string(lineno);
    LLAMA4_CHECK_ARG(fields.size() == 2, where, ": expected 'base64 rank', got '",
                     line.substr(0, 80), "'");
    int64_t rank;
    LLAMA4_CHECK_ARG(base64_decode(fields[0], bytes) && !bytes.empty(), where,
                     ": invalid base64 token '", fields[0].substr(0, 80), "'");
    LLAMA4_CHECK_ARG(parse_rank(fields[1], rank), where, ": invalid rank '", fields[1].substr(0, 20),
                     "'");
    LLAMA4_CHECK_ARG(rank < expected_ranks, where, ": rank ", rank, " is not below ", expected_ranks,
                     " (expected ", expected_ranks, " dense BPE ranks, a Llama 4 tokenizer.model)");
    LLAMA4_CHECK_ARG(line_of[size_t(rank)] == 0, where, ": rank ", rank, " repeats line ",
                     line_of[size_t(rank)]);
    by_rank[size_t(rank)] = bytes;
    line_of[size_t(rank)] = lineno;
    ++count;
    max_rank = std::max(max_rank, rank);
  }
  LLAMA4_CHECK_ARG(count == expected_ranks, path, ": expected ", expected_ranks,
                   " dense BPE ranks (a Llama 4 tokenizer.model), got ", count, " ranks up to ",
                   max_rank);

  RankTable t;
  t.offsets_.reserve(size_t(expected_ranks) + 1);
  t.offsets_.push_back(0);
  for (const std::string& b : by_rank) {
    t.arena_ += b;
    t.offsets_.push_back(uint32_t(t.arena_.size()));
  }
  const auto [repeat, first] = t.build_index();
  LLAMA4_CHECK_ARG(repeat < 0, path, ":", line_of[size_t(std::max(repeat, 0))], ": the bytes of rank ",
                   repeat, " repeat line ", line_of[size_t(std::max(first, 0))]);
  for (int b = 0; b < 256; ++b)
    LLAMA4_CHECK_ARG(t.byte_rank_[b] >= 0, path, ": byte 0x", std::hex, b,
                     " is not a token (a byte-level BPE needs all 256 single bytes)");
  t.build_merges();
  return t;
}

std::pair<int32_t, int32_t> RankTable::build_index() {
  std::pair<int32_t, int32_t> repeat = {-1, -1};
  size_t cap = 1;
  while (cap < offsets_.size() * 2) cap <<= 1;  // load factor <= 1/2
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  std::fill(std::begin(byte_rank_), std::end(byte_rank_), -1);
  pair_rank_.assign(65536, kNone);
  for (int32_t r = 0; r < size(); ++r) {
    const std::string_view b = bytes_of(r);
    const uint64_t h = hash_bytes(b.data(), b.size());
    for (uint64_t i = h;; ++i) {
      Slot& slot = slots_[i & mask_];
      if (slot.rank < 0) {
        slot = Slot{r, uint32_t(h >> 32)};
        break;
      }
      if (slot.tag == uint32_t(h >> 32) && bytes_of(slot.rank) == b) {  // repeated: the first stays
        if (repeat.first < 0) repeat = {r, slot.rank};
        break;
      }
    }
    const auto* u = reinterpret_cast<const unsigned char*>(b.data());
    if (b.size() == 1 && byte_rank_[u[0]] < 0) byte_rank_[u[0]] = r;
    if (b.size() == 2 && pair_rank_[size_t(u[0]) << 8 | u[1]] == kNone)
      pair_rank_[size_t(u[0]) << 8 | u[1]] = r;
  }
  return repeat;
}

void RankTable::build_merges() {
  // (a, b) -> rank for each cut of each token T into two tokens a = T[:k], b = T[k:]. In
  // byte-sorted order the tokens that are prefixes of T are exactly the ones left on a stack
  // after popping those that are not, so only the right halves need hash lookups.
  struct Entry {
    uint64_t head;  // the first 8 bytes, big-endian, zero-padded: orders most pairs without reading
    int32_t rank;   // the bytes (a shorter string sorts first among equal heads, as it should)
  };
  std::vector<Entry> sorted(static_cast<size_t>(size()));
  for (int32_t r = 0; r < size(); ++r) {
    const std::string_view b = bytes_of(r);
    uint64_t head = 0;
    for (size_t k = 0; k < 8; ++k) head = head << 8 | (k < b.size() ? uint8_t(b[k]) : 0u);
    sorted[size_t(r)] = {head, r};
  }
  std::sort(sorted.begin(), sorted.end(), [&](const Entry& x, const Entry& y) {
    return x.head != y.head ? x.head < y.head : bytes_of(x.rank) < bytes_of(y.rank);
  });
  struct Cut {
    int32_t left, rank;    // T = bytes_of(rank) starts with the token `left`
    uint32_t begin, size;  // the rest of T: arena_[begin, begin + size)
  };
  std::vector<Cut> cuts;
  std::vector<int32_t> prefixes;  // tokens that are prefixes of the current one, shortest first
  for (const auto& [head, r] : sorted) {
    const std::string_view b = bytes_of(r);
    while (!prefixes.empty() && b.substr(0, bytes_of(prefixes.back()).size()) != bytes_of(prefixes.back()))
      prefixes.pop_back();
    for (const int32_t left : prefixes) {
      const uint32_t k = uint32_t(bytes_of(left).size());
      cuts.push_back({left, r, offsets_[size_t(r)] + k, uint32_t(b.size()) - k});
    }
    prefixes.push_back(r);
  }
  // Is the rest of each cut a token? ~800k lookups whose memory reads are cache misses: done in
  // batches, each stage prefetching what the next one reads, so the misses overlap.
  std::vector<Merge> found;
  constexpr size_t kBatch = 64;
  uint64_t hash[kBatch];
  int32_t guess[kBatch];
  for (size_t c0 = 0; c0 < cuts.size(); c0 += kBatch) {
    const size_t n = std::min(kBatch, cuts.size() - c0);
    const Cut* c = cuts.data() + c0;
    for (size_t j = 0; j < n; ++j) {
      hash[j] = hash_bytes(arena_.data() + c[j].begin, c[j].size);
      __builtin_prefetch(&slots_[hash[j] & mask_]);
    }
    for (size_t j = 0; j < n; ++j) {  // the first slot with this tag, if any
      guess[j] = -1;
      for (uint64_t i = hash[j];; ++i) {
        const Slot slot = slots_[i & mask_];
        if (slot.rank < 0) break;
        if (slot.tag == uint32_t(hash[j] >> 32)) {
          guess[j] = slot.rank;
          __builtin_prefetch(&offsets_[size_t(slot.rank)]);
          break;
        }
      }
    }
    for (size_t j = 0; j < n; ++j)
      if (guess[j] >= 0) __builtin_prefetch(arena_.data() + offsets_[size_t(guess[j])]);
    for (size_t j = 0; j < n; ++j) {
      if (guess[j] < 0) continue;  // no slot with this tag: not a token
      const std::string_view rest(arena_.data() + c[j].begin, c[j].size);
      // A tag shared by other bytes (rare): the plain lookup goes on probing.
      const int32_t right = bytes_of(guess[j]) == rest ? guess[j] : find(rest);
      if (right >= 0) found.push_back({uint64_t(uint32_t(c[j].left)) << 32 | uint32_t(right), c[j].rank});
    }
  }
  size_t cap = 1;
  while (cap < found.size() * 2) cap <<= 1;  // load factor <= 1/2
  merges_.assign(cap, Merge{});
  merge_mask_ = cap - 1;
  for (const Merge& m : found) {  // keys are distinct: a and b fix the bytes, so the token
    uint64_t i = fmix64(m.key);
    while (merges_[i & merge_mask_].key != kEmptyKey) ++i;
    merges_[i & merge_mask_] = m;
  }
}

int32_t RankTable::find(std::string_view bytes) const {
  const uint64_t h = hash_bytes(bytes.data(), bytes.size());
  const uint32_t tag = uint32_t(h >> 32);
  for (uint64_t i = h;; ++i) {
    const Slot slot = slots_[i & mask_];
    if (slot.rank < 0) return -1;
    if (slot.tag != tag) continue;
    const int32_t r = slot.rank;
    const uint32_t begin = offsets_[size_t(r)], len = offsets_[size_t(r) + 1] - begin;
    if (len == bytes.size() && std::memcmp(arena_.data() + begin, bytes.data(), len) == 0) return r;
  }
}

namespace {

// tiktoken's _byte_pair_merge, step for step: a list of parts with the rank of each part merged
// with its right neighbour; each step scans for the lowest rank. O(n^2), fastest for short pieces.
// Each part keeps its own token (the rank that made it), so a neighbour's rank is merge_rank of
// two tokens (tiktoken looks up the same bytes) and the result needs no lookups.
void merge_scan(const RankTable& t, const unsigned char* p, size_t n, std::vector<int32_t>& out) {
  struct Part {
    uint32_t start;
    int32_t rank;   // rank of [start, start of the part after next), or kNone
    int32_t token;  // rank of the part itself
  };
  thread_local std::vector<Part> parts;  // reused: no allocation per piece
  parts.clear();
  for (size_t i = 0; i + 1 < n; ++i)
    parts.push_back({uint32_t(i), t.pair_rank(p[i], p[i + 1]), t.byte_rank(p[i])});
  parts.push_back({uint32_t(n - 1), RankTable::kNone, t.byte_rank(p[n - 1])});
  parts.push_back({uint32_t(n), RankTable::kNone, -1});
  for (;;) {
    size_t best = 0;
    int32_t best_rank = RankTable::kNone;
    for (size_t i = 0; i + 1 < parts.size(); ++i)
      if (parts[i].rank < best_rank) best_rank = parts[i].rank, best = i;  // leftmost lowest
    if (best_rank == RankTable::kNone) break;
    parts.erase(parts.begin() + std::ptrdiff_t(best) + 1);
    parts[best].token = best_rank;
    // The pairs either side of the new part (the last real part has only the end marker after it).
    parts[best].rank = best + 2 < parts.size() ? t.merge_rank(best_rank, parts[best + 1].token)
                                               : RankTable::kNone;
    if (best > 0) parts[best - 1].rank = t.merge_rank(parts[best - 1].token, best_rank);
  }
  for (size_t i = 0; i + 1 < parts.size(); ++i) out.push_back(parts[i].token);
}

// The same merges in O(n log n) for long pieces: parts as a linked list over byte offsets, and a
// min-heap of (rank, start). The heap's order is tiktoken's (lowest rank, then leftmost); entries
// made stale by a merge are recognised because a part's pair rank always changes when it merges
// (the new pair is longer, so it is a different byte string).
void merge_heap(const RankTable& t, const unsigned char* p, size_t n, std::vector<int32_t>& out) {
  thread_local std::vector<uint32_t> next, prev;
  thread_local std::vector<int32_t> rank, token;
  thread_local std::vector<uint64_t> heap;
  next.resize(n);
  prev.resize(n);
  rank.assign(n, RankTable::kNone);  // rank of the part at s merged with its next part
  token.resize(n);                    // rank of the part at s itself
  heap.clear();
  auto key = [](int32_t r, uint32_t s) { return uint64_t(uint32_t(r)) << 32 | s; };
  for (size_t i = 0; i < n; ++i) {
    next[i] = uint32_t(i + 1);
    prev[i] = uint32_t(i == 0 ? n : i - 1);  // n: no previous part
    token[i] = t.byte_rank(p[i]);
    if (i + 1 < n) {
      rank[i] = t.pair_rank(p[i], p[i + 1]);
      if (rank[i] != RankTable::kNone) heap.push_back(key(rank[i], uint32_t(i)));
    }
  }
  const auto later = std::greater<uint64_t>();  // a min-heap
  std::make_heap(heap.begin(), heap.end(), later);
  auto push = [&](uint64_t k) {
    heap.push_back(k);
    std::push_heap(heap.begin(), heap.end(), later);
  };
  auto pair_rank = [&](uint32_t s) {  // rank of the part at s merged with its next part
    return next[s] < n ? t.merge_rank(token[s], token[next[s]]) : RankTable::kNone;
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const uint64_t top = heap.back();
    heap.pop_back();
    const int32_t r = int32_t(top >> 32);
    const uint32_t s = uint32_t(top & 0xFFFFFFFFu);
    if (rank[s] != r) continue;  // stale (merged away parts have rank kNone)
    const uint32_t gone = next[s];
    next[s] = next[gone];
    if (next[s] < n) prev[next[s]] = s;
    rank[gone] = RankTable::kNone;
    token[s] = r;
    rank[s] = pair_rank(s);
    if (rank[s] != RankTable::kNone) push(key(rank[s], s));
    if (prev[s] < n) {
      const uint32_t q = prev[s];
      rank[q] = pair_rank(q);
      if (rank[q] != RankTable::kNone) push(key(rank[q], q));
    }
  }
  for (uint32_t s = 0; s < n; s = next[s]) out.push_back(token[s]);
}

}  // namespace

void bpe_encode(const RankTable& table, std::string_view piece, std::vector<int32_t>& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
  const size_t n = piece.size();
  if (n == 0) return;
  const int32_t whole = table.find(piece);
  if (whole >= 0) {
    out.push_back(whole);
    return;
  }
  // The scan's cost grows as n^2; past a few dozen bytes the heap wins.
  if (n < 48) {
    merge_scan(table, p, n, out);
  } else {
    merge_heap(table, p, n, out);
  }
}

}  // namespace llama4::text
