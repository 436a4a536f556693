// Byte-level BPE: the rank table of a tiktoken file and tiktoken's lowest-rank merge loop.
//   RankTable::load_tiktoken(path)   200,000 lines `base64(bytes) rank` -> bytes <-> rank, and
//                                     (token, token) -> rank of their concatenation
//   bpe_encode(table, piece, out)     appends the ranks of one pre-tokenized piece
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llama4::text {

// MurmurHash3's fmix64: every input bit reaches the low bits that pick a hash-table slot.
inline uint64_t fmix64(uint64_t h) {
  h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdull;
  h = (h ^ (h >> 33)) * 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

class RankTable {
 public:
  // Parses and checks a tiktoken file: ranks 0..expected_ranks-1 each exactly once, distinct
  // non-empty byte strings, every single byte present. ValueError names the file and line.
  static RankTable load_tiktoken(const std::string& path, int32_t expected_ranks);

  // The rank of `bytes`, or -1 when it is not a token.
  int32_t find(std::string_view bytes) const;
  int32_t find(const unsigned char* p, size_t n) const {
    return find(std::string_view(reinterpret_cast<const char*>(p), n));
  }
  std::string_view bytes_of(int32_t rank) const {
    return std::string_view(arena_.data() + offsets_[size_t(rank)],
                            offsets_[size_t(rank) + 1] - offsets_[size_t(rank)]);
  }
  int32_t size() const { return int32_t(offsets_.size()) - 1; }
  // Rank of a two-byte string (or kNone): the first merge step reads only these.
  int32_t pair_rank(unsigned char a, unsigned char b) const { return pair_rank_[size_t(a) << 8 | b]; }
  int32_t byte_rank(unsigned char b) const { return byte_rank_[b]; }
  // Rank of the bytes of token a followed by those of token b (or kNone). The merge loop asks
  // only this; a table of every such pair answers it without hashing or reading any bytes.
  int32_t merge_rank(int32_t a, int32_t b) const {
    const uint64_t key = uint64_t(uint32_t(a)) << 32 | uint32_t(b);
    for (uint64_t i = fmix64(key);; ++i) {
      const Merge& m = merges_[i & merge_mask_];
      if (m.key == key) return m.rank;
      if (m.key == kEmptyKey) return kNone;
    }
  }

  static constexpr int32_t kNone = INT32_MAX;  // "not a token" inside the merge loop

 private:
  // The hash index and the byte tables; returns the first rank whose bytes repeat an earlier
  // rank's, and that rank ({-1, -1} when all are distinct).
  std::pair<int32_t, int32_t> build_index();
  void build_merges();

  std::string arena_;              // the token bytes, in rank order
  std::vector<uint32_t> offsets_;  // rank r is arena_[offsets_[r], offsets_[r + 1])
  // Open-addressing hash table (linear probing) of ranks. Each slot keeps 32 more bits of the
  // hash, so a probe that meets another token's slot (most BPE lookups are of pairs that are not
  // tokens) is rejected without reading that token's bytes, which is a cache miss each.
  struct Slot {
    int32_t rank = -1;  // -1: empty
    uint32_t tag = 0;   // the hash's high 32 bits
  };
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;              // slots_.size() - 1
  std::vector<int32_t> pair_rank_;  // 65,536 two-byte strings
  // Every (a, b) whose concatenated bytes are a token, found by cutting each token in two:
  // open addressing on key a << 32 | b.
  static constexpr uint64_t kEmptyKey = ~uint64_t(0);
  struct Merge {
    uint64_t key = kEmptyKey;
    int32_t rank = kNone;
  };
  std::vector<Merge> merges_;
  uint64_t merge_mask_ = 0;
  int32_t byte_rank_[256] = {};
};

// Appends the ranks of `piece` (one match of the pre-tokenizer) to `out`, exactly as tiktoken's
// byte_pair_encode: the whole piece if it is a token, else repeated merging of the adjacent pair
// with the lowest rank (the leftmost among equal ranks) until no pair is a token.
void bpe_encode(const RankTable& table, std::string_view piece, std::vector<int32_t>& out);

}  // namespace llama4::text
