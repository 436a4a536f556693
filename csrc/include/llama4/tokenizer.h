// The Llama 4 tokenizer in C++: text <-> token ids, the same ids as the Python tokenizer
// (llama4_native/tokenizer.py, which runs tiktoken exactly like Meta's reference).
//
//   Tokenizer tok("path/to/tokenizer.model");             // or Tokenizer::from_checkpoint(dir)
//   std::vector<int32_t> ids = tok.encode("Hello");       // no BOS: prepend tok.bos_id() yourself
//   std::string text = tok.decode(ids);                   // invalid UTF-8 -> U+FFFD
//   IncrementalDecoder stream(tok);                       // streaming: never splits a character
//   for (int32_t id : generated) std::cout << stream.feed(id);
//   std::cout << stream.flush();
//
// Vocabulary: the 200,000 byte-level BPE ranks of a tiktoken file (lines `base64(bytes) rank`),
// then Llama 4's 2,048 special tokens (ids 200000..202047, names as in special_tokens.py).
// Encoding: the o200k pre-tokenizer regex (PCRE2, Unicode properties, JIT), byte-pair merges by
// rank, and Meta's cutting of long inputs (400k-character chunks; runs of more than 25k
// whitespace or non-whitespace characters cut, whitespace as Python's str.isspace()). The regex
// classes come from PCRE2's Unicode tables (14.0 in PCRE2 10.42, see build_info().pcre2_version):
// characters assigned in later Unicode versions can split differently from tiktoken's (its Rust
// regex has newer tables); every character assigned by then gives tiktoken's ids (tested).
//
// Text is UTF-8. `encode` rejects invalid UTF-8 with a ValueError naming the byte offset (a Python
// str cannot hold it, so there is no Python behaviour to copy); utf8_replace_invalid() turns such
// bytes into U+FFFD first, exactly as Python's bytes.decode("utf-8", errors="replace").
//
// Special-token text in the input ("<|eot|>") is plain text unless the caller allows it
// (AllowedSpecial::all() or a list of names), so user text cannot forge control tokens.
//
// A Tokenizer is immutable after loading; copies share the tables, and encode/decode may run
// from several threads at once. Errors: ValueError (bad file, line, id, argument), Error (a
// regex engine failure; a library built without the tokenizer, see build_info().tokenizer).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llama4 {

// Ids of the Llama 4 special tokens (LLAMA4.md §4.1, the table of special_tokens.py).
namespace token_ids {
constexpr int32_t kNumBaseTokens = 200000;
constexpr int32_t kNumSpecialTokens = 2048;
constexpr int32_t kVocabSize = kNumBaseTokens + kNumSpecialTokens;  // 202048
constexpr int32_t kBeginOfText = 200000;  // BOS
constexpr int32_t kEndOfText = 200001;    // Meta's eos_id
constexpr int32_t kHeaderStart = 200005;
constexpr int32_t kHeaderEnd = 200006;
constexpr int32_t kEom = 200007;           // end of message (tool call follows)
constexpr int32_t kEot = 200008;           // end of turn
constexpr int32_t kPythonStart = 200016;
constexpr int32_t kPythonEnd = 200017;
constexpr int32_t kPad = 200018;           // <|finetune_right_pad|> (config pad_token_id)
constexpr int32_t kImageStart = 200080;
constexpr int32_t kImageEnd = 200081;
constexpr int32_t kTileXSeparator = 200084;
constexpr int32_t kTileYSeparator = 200085;
constexpr int32_t kImage = 200090;         // the placeholder the chat template writes
constexpr int32_t kPatch = 200092;         // image_token_index: the rows that get vision features
}  // namespace token_ids

// The 2,048 special-token names in id order (names()[i] has id 200000 + i).
const std::vector<std::string>& special_token_names();

// Which special-token texts in the input become special tokens (default: none).
class AllowedSpecial {
 public:
  static AllowedSpecial none() { return AllowedSpecial(false, {}); }
  static AllowedSpecial all() { return AllowedSpecial(true, {}); }
  // Full names such as "<|eot|>"; encode() raises ValueError on a name that is not a special token.
  explicit AllowedSpecial(std::vector<std::string> names) : all_(false), names_(std::move(names)) {}

  bool is_all() const { return all_; }
  const std::vector<std::string>& names() const { return names_; }

 private:
  AllowedSpecial(bool all, std::vector<std::string> names) : all_(all), names_(std::move(names)) {}
  bool all_;
  std::vector<std::string> names_;
};

class Tokenizer {
 public:
  // Loads a tiktoken BPE file (Llama 4's tokenizer.model). ValueError names the file (and line)
  // when it is missing, malformed, or not 200,000 dense ranks with all 256 single bytes.
  explicit Tokenizer(const std::string& model_path);
  // The tokenizer of a checkpoint folder: its tokenizer.model (also accepts the file itself).
  // A folder with only a tokenizer.json (Hugging Face format) is a ValueError saying so: the C++
  // tokenizer reads tiktoken files only. (Python's Tokenizer.from_checkpoint prefers tokenizer.json
  // when the `tokenizers` package is installed; the ids are the same except for inputs that Meta
  // cuts, see tokenizer.py.)
  static Tokenizer from_checkpoint(const std::string& path);

  // Token ids of UTF-8 `text`, without BOS. ValueError on invalid UTF-8 (with the byte offset) and
  // on unknown names in `allowed`.
  std::vector<int32_t> encode(std::string_view text,
                              const AllowedSpecial& allowed = AllowedSpecial::none()) const;

  // The raw bytes of `ids` (may end inside a UTF-8 character). Special tokens decode to their names
  // unless skip_special_tokens. ValueError on an id outside [0, vocab_size()).
  std::string decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // decode_bytes() made valid UTF-8: invalid sequences become U+FFFD (as tiktoken and Python do).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The bytes of one token (a special token's are its name); valid while a copy of this lives.
  std::string_view token_bytes(int32_t id) const;

  bool is_special(int32_t id) const { return id >= token_ids::kNumBaseTokens && id < vocab_size(); }
  // Id of a special token by its full name ("<|eot|>" -> 200008); ValueError if unknown.
  int32_t special_token_id(std::string_view name) const;

  int32_t vocab_size() const { return token_ids::kVocabSize; }
  int32_t bos_id() const { return token_ids::kBeginOfText; }
  int32_t eos_id() const { return token_ids::kEndOfText; }  // instruct models end turns with eot
  int32_t eot_id() const { return token_ids::kEot; }
  int32_t eom_id() const { return token_ids::kEom; }
  int32_t pad_id() const { return token_ids::kPad; }
  // Generation stops on any of these: <|end_of_text|>, <|eom|>, <|eot|> (Meta stop_tokens).
  std::vector<int32_t> stop_ids() const {
    return {token_ids::kEndOfText, token_ids::kEom, token_ids::kEot};
  }
  bool is_stop(int32_t id) const {
    return id == token_ids::kEndOfText || id == token_ids::kEom || id == token_ids::kEot;
  }

  const std::string& source() const;  // the file it was loaded from

  struct Impl;  // tables and the compiled regex (csrc/text/tokenizer_impl.h)

 private:
  std::shared_ptr<const Impl> impl_;
};

// ---- UTF-8 -----------------------------------------------------------------------------------

// Byte offset of the first invalid UTF-8 sequence in `bytes`, or std::string_view::npos.
size_t utf8_find_invalid(std::string_view bytes);
// Python's bytes.decode("utf-8", errors="replace") re-encoded: each maximal invalid subsequence
// becomes one U+FFFD (the Unicode "maximal subpart" practice, which Python follows).
std::string utf8_replace_invalid(std::string_view bytes);

// Incremental UTF-8 repair for streams: bytes of an incomplete character wait for the next feed;
// the concatenated output always equals utf8_replace_invalid() of all input (like Python's
// codecs incremental decoder with errors="replace").
class Utf8StreamDecoder {
 public:
  std::string feed(std::string_view bytes);
  std::string flush();  // end of stream: a trailing incomplete character becomes U+FFFD
  void reset() { pending_.clear(); }

 private:
  std::string pending_;  // at most 3 bytes: a valid prefix of one character, or ED A0..BF
};

// Streaming detokeniser: feed generated ids one at a time, get text that never splits a character.
// "".join(feed(...)) + flush() == tokenizer.decode(all ids), for any ids.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(Tokenizer tokenizer, bool skip_special_tokens = false)
      : tokenizer_(std::move(tokenizer)), skip_special_(skip_special_tokens) {}
  std::string feed(int32_t id);  // ValueError on an id outside the vocabulary
  std::string flush() { return utf8_.flush(); }
  void reset() { utf8_.reset(); }

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  Utf8StreamDecoder utf8_;
};

}  // namespace llama4
