// O200kSplitter on PCRE2 (8-bit, UTF + UCP), JIT-compiled when the platform allows.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "llama4/error.h"
#include "text/pretokenizer.h"

namespace llama4::text {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "PCRE2 error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match state: match data for one pair of offsets, and a JIT stack that grows up to
// 8 MiB. Pieces are bounded by Meta's cutting (runs of at most 25k characters), and PCRE2 keeps
// single-character repeats off its stack, so this bound is far from reached; hitting it is an
// Error, never a silent skip.
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    LLAMA4_CHECK(data && context && stack, "PCRE2: cannot allocate match state");
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

// tiktoken's regex engine (Rust `regex`) reads \s as the Unicode White_Space property; PCRE2 with
// UCP adds U+180E (MONGOLIAN VOWEL SEPARATOR, White_Space until Unicode 6.3), so "\u180e's" would
// split differently. White_Space is a stable list: write it out in place of \s and \S.
constexpr const char* kWhiteSpace =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// kO200kPattern with \s and \S replaced by explicit White_Space classes (inside a [...] class
// \s becomes the bare ranges). The pattern has no escaped brackets, so a depth flag suffices.
std::string pcre2_pattern() {
  const std::string_view p = kO200kPattern;
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      ++i;
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (e == 'S') {
        LLAMA4_CHECK(!in_class, "the pre-tokenizer pattern has \\S inside a class");
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else {
        out += '\\';
        out += e;
      }
      continue;
    }
    if (p[i] == '[') in_class = true;
    if (p[i] == ']') in_class = false;
    out += p[i];
  }
  return out;
}

}  // namespace

O200kSplitter::O200kSplitter() {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  const std::string pattern = pcre2_pattern();
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
  LLAMA4_CHECK(code != nullptr, "PCRE2 cannot compile the o200k pattern at offset ", error_offset,
               ": ", pcre2_message(error));
  code_ = code;
  // Without JIT support (some platforms) the interpreter gives the same matches, only slower.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

O200kSplitter::~O200kSplitter() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void O200kSplitter::split(std::string_view text,
                          std::vector<std::pair<uint32_t, uint32_t>>& pieces) const {
  const auto* code = static_cast<const pcre2_code*>(code_);
  MatchScratch& s = scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const PCRE2_SIZE length = text.size();
  PCRE2_SIZE offset = 0;
  while (offset < length) {
    // NO_UTF_CHECK: the tokenizer validated the whole text once; offsets are character starts.
    const int rc = jit_ ? pcre2_jit_match(code, subject, length, offset, PCRE2_NO_UTF_CHECK, s.data,
                                          s.context)
                        : pcre2_match(code, subject, length, offset, PCRE2_NO_UTF_CHECK, s.data,
                                      s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    LLAMA4_CHECK(rc > 0, "PCRE2 match failed at byte ", offset, " of a ", length,
                 "-byte piece: ", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
    // The pattern has no empty match; guard anyway so a future pattern cannot loop forever.
    LLAMA4_CHECK(ov[1] > ov[0], "the pre-tokenizer pattern matched an empty string");
    pieces.emplace_back(uint32_t(ov[0]), uint32_t(ov[1] - ov[0]));
    offset = ov[1];
  }
}

const char* pcre2_version_string() {
  static const std::string version = [] {
    char buf[64] = {};
    pcre2_config(PCRE2_CONFIG_VERSION, buf);  // "10.42 2022-12-11": keep the version number
    const std::string v(buf);
    return "PCRE2 " + v.substr(0, v.find(' '));
  }();
  return version.c_str();
}

const char* pcre2_unicode_version() {
  static const std::string version = [] {
    char buf[32] = {};
    pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, buf);
    return std::string(buf);
  }();
  return version.c_str();
}

}  // namespace llama4::text
