// O200kSplitter for builds without PCRE2 (LLAMA4_TOKENIZER=OFF, or AUTO without libpcre2-8):
// constructing a Tokenizer says so clearly. Decoding helpers and the chat renderer do not need it.
#include "llama4/error.h"
#include "text/pretokenizer.h"

namespace llama4::text {

O200kSplitter::O200kSplitter() {
  throw ::llama4::Error(
      "this build of llama4_native has no C++ tokenizer: it was built without PCRE2 "
      "(install libpcre2-dev and rebuild with LLAMA4_TOKENIZER=AUTO or ON)");
}
O200kSplitter::~O200kSplitter() = default;
void O200kSplitter::split(std::string_view, std::vector<std::pair<uint32_t, uint32_t>>&) const {}
const char* pcre2_version_string() { return ""; }
const char* pcre2_unicode_version() { return ""; }

}  // namespace llama4::text
