// The o200k pre-tokenizer: splits text into the pieces that BPE encodes one by one.
//   O200kSplitter splitter;              // compiles the regex once (PCRE2, JIT when available)
//   splitter.split(text, pieces);        // pieces: (offset, length) of each match, left to right
// The pattern is Meta's O200K_PATTERN character for character; PCRE2 runs it with UTF and UCP, so
// \s, \p{L}, \p{N}, (?i:...) and the (?!\S) lookahead mean what they mean in tiktoken's regex.
#pragma once
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace llama4::text {

extern const char kO200kPattern[];

class O200kSplitter {
 public:
  // Error when this library was built without PCRE2 (LLAMA4_TOKENIZER=OFF or PCRE2 not found).
  O200kSplitter();
  ~O200kSplitter();
  O200kSplitter(const O200kSplitter&) = delete;
  O200kSplitter& operator=(const O200kSplitter&) = delete;

  // Appends the matches in `text` (valid UTF-8, checked by the caller) to `pieces`. Text that no
  // alternative matches would be skipped, as tiktoken's find_iter skips it (the pattern covers
  // every character, so nothing is). Safe to call from several threads at once.
  void split(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>& pieces) const;

  bool jit() const { return jit_; }

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// "PCRE2 10.42" when this build has the regex engine, else "".
const char* pcre2_version_string();
// The Unicode version of PCRE2's property tables ("14.0.0"), else "". Code points assigned after
// it have no letter/number/mark properties there, so the split of such text can differ from
// tiktoken's (whose Rust regex tables are newer); every earlier code point splits the same.
const char* pcre2_unicode_version();

}  // namespace llama4::text
