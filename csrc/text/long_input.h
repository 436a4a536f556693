// Meta's cutting of long inputs before BPE (tokenizer_backends.py, Meta's Tokenizer.encode):
// chunks of at most 400,000 characters, each cut so that no piece holds a run of more than
// 25,000 whitespace or non-whitespace characters (tiktoken panics on some very long pieces).
// Characters are code points and "whitespace" is Python's str.isspace(), as in Python.
#pragma once
#include <cstddef>
#include <string_view>
#include <vector>

namespace llama4::text {

constexpr size_t kMaxEncodeChars = 400000;  // TIKTOKEN_MAX_ENCODE_CHARS
constexpr size_t kMaxRunChars = 25000;      // MAX_NO_WHITESPACES_CHARS

// Meta's _split_whitespaces_or_nonwhitespaces: a new piece starts at the character that would
// make a run of max_run + 1. `s` is valid UTF-8; always at least one piece (possibly empty).
std::vector<std::string_view> split_long_runs(std::string_view s, size_t max_run);

// The pieces Meta encodes one by one: the 400k-character chunks of `text`, each split_long_runs'ed.
std::vector<std::string_view> cut_long_input(std::string_view text,
                                             size_t max_chars = kMaxEncodeChars,
                                             size_t max_run = kMaxRunChars);

}  // namespace llama4::text
