// libFuzzer target: the C++ tokenizer on arbitrary ids and arbitrary bytes (Llama 4's
// tokenizer.model, from LLAMA4_TOKENIZER_MODEL). The first byte picks what the rest is:
//   0: little-endian int32 token ids -> decode: a ValueError naming the first id outside the
//      vocabulary, else valid UTF-8 that the streaming decoder reproduces piece by piece;
//   1, 2: text -> encode (2: special-token text allowed): a ValueError naming the byte offset of
//      the first invalid UTF-8 sequence, else ids that decode back to the text exactly.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "llama4/tokenizer.h"
#include "typed_errors.h"

namespace {

const llama4::Tokenizer& tokenizer() {
  static const llama4::Tokenizer tok = [] {
    const char* path = std::getenv("LLAMA4_TOKENIZER_MODEL");
    if (!path || !*path) fuzz::fail("fuzz_tokenizer", "set LLAMA4_TOKENIZER_MODEL to Llama 4's tokenizer.model");
    return llama4::Tokenizer(path);
  }();
  return tok;
}

void decode_ids(const uint8_t* data, size_t size) {
  std::vector<int32_t> ids(size / 4);
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
  const llama4::Tokenizer& tok = tokenizer();
  std::string bad;
  for (int32_t id : ids)
    if (id < 0 || id >= tok.vocab_size()) {
      bad = "token id " + std::to_string(id) + " ";
      break;
    }
  fuzz::expect_typed("fuzz_tokenizer", bad, [&] {
    const bool skip = !ids.empty() && (ids[0] & 1);
    const std::string text = tok.decode(ids, skip);
    if (!bad.empty()) fuzz::fail("fuzz_tokenizer", "decode accepted an id outside the vocabulary");
    if (llama4::utf8_find_invalid(text) != std::string::npos) fuzz::fail("fuzz_tokenizer", "decode gave invalid UTF-8");
    llama4::IncrementalDecoder stream(tok, skip);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.feed(id);
    streamed += stream.flush();
    if (streamed != text) fuzz::fail("fuzz_tokenizer", "the streaming decoder differs from decode()");
  });
}

void encode_text(const uint8_t* data, size_t size, bool allow_special) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t bad = llama4::utf8_find_invalid(text);
  const std::string must_name = bad == std::string::npos ? "" : "at byte " + std::to_string(bad);
  fuzz::expect_typed("fuzz_tokenizer", must_name, [&] {
    const llama4::Tokenizer& tok = tokenizer();
    const std::vector<int32_t> ids =
        tok.encode(text, allow_special ? llama4::AllowedSpecial::all() : llama4::AllowedSpecial::none());
    if (bad != std::string::npos) fuzz::fail("fuzz_tokenizer", "encode accepted invalid UTF-8");
    if (tok.decode(ids) != text) fuzz::fail("fuzz_tokenizer", "decode(encode(text)) != text");
    for (int32_t id : ids)
      if (!allow_special && tok.is_special(id)) fuzz::fail("fuzz_tokenizer", "plain text became a special token");
  });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizer();  // load once, outside the timed runs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  switch (data[0] % 3) {
    case 0: decode_ids(data + 1, size - 1); break;
    case 1: encode_text(data + 1, size - 1, false); break;
    default: encode_text(data + 1, size - 1, true); break;
  }
  return 0;
}
