// UTF-8 validation, U+FFFD repair (one-shot and streaming), and Python's str.strip().
#include "text/utf8.h"

#include <cstring>
#include <string_view>

#include "llama4/tokenizer.h"

namespace llama4 {
namespace text {

Utf8Step utf8_step(const unsigned char* p, size_t n) {
  const unsigned char b = p[0];
  if (b < 0x80) return {Utf8Step::kValid, 1};
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the next byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) lo = 0xA0;       // no overlong 3-byte forms
    else if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) lo = 0x90;       // no overlong 4-byte forms
    else if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Utf8Step::kInvalid, 1};  // a continuation byte, C0/C1 or F5..FF
  }
  for (int k = 1; k <= need; ++k) {
    if (size_t(k) >= n) return {Utf8Step::kTruncated, k};
    const unsigned char c = p[k];
    if (c < lo || c > hi) return {Utf8Step::kInvalid, k};
    lo = 0x80;
    hi = 0xBF;
  }
  return {Utf8Step::kValid, need + 1};
}

std::string py_strip(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t begin = 0, end = 0;  // [begin, end): from the first to past the last non-space character
  bool seen = false;
  for (size_t i = 0; i < s.size();) {
    int len;
    const uint32_t c = utf8_decode(p + i, &len);
    if (!py_isspace(c)) {
      if (!seen) begin = i;
      seen = true;
      end = i + size_t(len);
    }
    i += size_t(len);
  }
  return seen ? s.substr(begin, end - begin) : std::string();
}

}  // namespace text

using text::Utf8Step;
using text::utf8_step;

static const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

size_t utf8_find_invalid(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    // Runs of ASCII are the common case: skip them 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const Utf8Step step = utf8_step(p + i, n - i);
    if (step.kind != Utf8Step::kValid) return i;
    i += size_t(step.length);
  }
  return std::string_view::npos;
}

std::string utf8_replace_invalid(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n;) {
    const Utf8Step step = utf8_step(p + i, n - i);
    if (step.kind == Utf8Step::kValid) {
      out.append(bytes.data() + i, size_t(step.length));
    } else {
      out += kReplacement;  // an invalid or (at the end) truncated subpart
    }
    i += size_t(step.length);
  }
  return out;
}

std::string Utf8StreamDecoder::feed(std::string_view bytes) {
  std::string data = pending_;
  data.append(bytes.data(), bytes.size());
  pending_.clear();
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n;) {
    const Utf8Step step = utf8_step(p + i, n - i);
    // Wait for the rest of this character. Also hold a trailing ED A0..BF (the start of an
    // encoded surrogate, never valid): CPython's incremental decoder does, so each piece comes out
    // at the same token as in Python (the replacements themselves are the same either way).
    const bool surrogate_start = n - i == 2 && p[i] == 0xED && p[i + 1] >= 0xA0 && p[i + 1] <= 0xBF;
    if (step.kind == Utf8Step::kTruncated || surrogate_start) {
      pending_.assign(data, i, std::string::npos);
      break;
    }
    if (step.kind == Utf8Step::kValid) {
      out.append(data, i, size_t(step.length));
    } else {
      out += kReplacement;
    }
    i += size_t(step.length);
  }
  return out;
}

std::string Utf8StreamDecoder::flush() {
  // An incomplete character is one U+FFFD; a held surrogate start (ED A0..BF) is two.
  std::string out = utf8_replace_invalid(pending_);
  pending_.clear();
  return out;
}

}  // namespace llama4
