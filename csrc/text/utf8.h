// UTF-8 helpers of the tokenizer: one step of a validating decoder (the building block of
// validation, U+FFFD repair and streaming), code points of valid text, and Python's str.isspace().
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace llama4::text {

// What the bytes at p[0..n) (n >= 1) start with.
//   kValid:     a whole character of `length` bytes;
//   kInvalid:   an ill-formed sequence: its maximal subpart, `length` bytes, is one U+FFFD;
//   kTruncated: all n bytes are a valid prefix of one character (more input could complete it).
// The byte ranges are those of the Unicode standard's table 3-7 (no overlongs, no surrogates, no
// code points above U+10FFFF), so the U+FFFD count equals Python's errors="replace".
struct Utf8Step {
  enum Kind { kValid, kInvalid, kTruncated } kind;
  int length;
};
Utf8Step utf8_step(const unsigned char* p, size_t n);

// The code point of the valid character at p, and its length in bytes.
inline uint32_t utf8_decode(const unsigned char* p, int* length) {
  const unsigned b = p[0];
  if (b < 0x80) {
    *length = 1;
    return b;
  }
  if (b < 0xE0) {
    *length = 2;
    return ((b & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  }
  if (b < 0xF0) {
    *length = 3;
    return ((b & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
  }
  *length = 4;
  return ((b & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

// Python's str.isspace() for one code point: bidirectional class WS, B or S, or category Zs.
// Unlike the regex \s (Unicode White_Space) it includes U+001C..U+001F. Meta's cutting of long
// runs and HF's |trim (chat system messages) use this one.
inline bool py_isspace(uint32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// `s` without leading and trailing py_isspace characters (Python's str.strip()); s is valid UTF-8.
std::string py_strip(const std::string& s);

}  // namespace llama4::text
