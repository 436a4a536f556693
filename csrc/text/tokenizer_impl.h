// What a loaded Tokenizer holds: the BPE ranks, the compiled pre-tokenizer, the special tokens.
#pragma once
#include <bitset>
#include <string>
#include <string_view>
#include <unordered_map>

#include "llama4/tokenizer.h"
#include "text/bpe.h"
#include "text/pretokenizer.h"

namespace llama4 {

struct Tokenizer::Impl {
  using SpecialMask = std::bitset<token_ids::kNumSpecialTokens>;

  explicit Impl(const std::string& path);

  // encode() below the UTF-8 check: tiktoken's encode (allowed special tokens split the text,
  // the pieces between them go through the regex and BPE) on one piece of Meta's cutting.
  void encode_piece(std::string_view text, const SpecialMask& allowed, bool any_allowed,
                    std::vector<int32_t>& out) const;
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
  SpecialMask mask_of(const AllowedSpecial& allowed) const;

  std::string source;
  text::O200kSplitter splitter;  // first: a build without PCRE2 fails before reading the file
  text::RankTable ranks;
  std::unordered_map<std::string_view, int32_t> special_ids;  // name -> id
};

}  // namespace llama4
