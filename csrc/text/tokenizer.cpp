// llama4::Tokenizer: loading, encode (Meta's cutting -> allowed special tokens -> regex -> BPE),
// decode, and the streaming IncrementalDecoder.
#include "llama4/tokenizer.h"

#include <filesystem>

#include "llama4/error.h"
#include "text/long_input.h"
#include "text/tokenizer_impl.h"

namespace llama4 {

Tokenizer::Impl::Impl(const std::string& path)
    : source(path), ranks(text::RankTable::load_tiktoken(path, token_ids::kNumBaseTokens)) {
  const std::vector<std::string>& names = special_token_names();
  for (size_t i = 0; i < names.size(); ++i) {
    // encode_piece finds a special token by the first "|>" after its "<|": no name may hold "|>"
    // before its end, or a shorter match could hide it.
    LLAMA4_CHECK(names[i].rfind("<|", 0) == 0 && names[i].find("|>") == names[i].size() - 2,
                 "special token name ", names[i], " is not of the form <|...|>");
    special_ids.emplace(names[i], token_ids::kNumBaseTokens + int32_t(i));
  }
}

Tokenizer::Impl::SpecialMask Tokenizer::Impl::mask_of(const AllowedSpecial& allowed) const {
  SpecialMask mask;
  if (allowed.is_all()) return mask.set();
  std::string unknown;
  int n_unknown = 0;
  for (const std::string& name : allowed.names()) {
    const auto it = special_ids.find(name);
    if (it != special_ids.end()) {
      mask.set(size_t(it->second - token_ids::kNumBaseTokens));
    } else if (n_unknown++ < 5) {
      unknown += (unknown.empty() ? "'" : ", '") + name + "'";
    }
  }
  LLAMA4_CHECK_ARG(n_unknown == 0, "allowed_special names unknown special tokens: [", unknown, "]");
  return mask;
}

void Tokenizer::Impl::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  thread_local std::vector<std::pair<uint32_t, uint32_t>> pieces;
  pieces.clear();
  splitter.split(text, pieces);
  for (const auto& [offset, length] : pieces) {
    text::bpe_encode(ranks, text.substr(offset, length), out);  // a whole-token piece: one lookup
  }
}

void Tokenizer::Impl::encode_piece(std::string_view text, const SpecialMask& allowed,
                                   bool any_allowed, std::vector<int32_t>& out) const {
  size_t start = 0;  // text[start..] is still to encode
  size_t find_from = 0;
  while (any_allowed) {
    // The leftmost allowed special token at or after find_from (tiktoken skips disallowed ones
    // and searches again from the next byte).
    const size_t open = text.find("<|", find_from);
    if (open == std::string_view::npos) break;
    const size_t close = text.find("|>", open + 2);
    if (close == std::string_view::npos) break;  // no later "<|" can close either
    const auto it = special_ids.find(text.substr(open, close + 2 - open));
    if (it == special_ids.end() || !allowed.test(size_t(it->second - token_ids::kNumBaseTokens))) {
      find_from = open + 1;
      continue;
    }
    encode_ordinary(text.substr(start, open - start), out);
    out.push_back(it->second);
    start = find_from = close + 2;
  }
  encode_ordinary(text.substr(start), out);
}

Tokenizer::Tokenizer(const std::string& model_path) : impl_(std::make_shared<const Impl>(model_path)) {}

Tokenizer Tokenizer::from_checkpoint(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_regular_file(p, ec)) {
    LLAMA4_CHECK_ARG(p.extension() != ".json", path,
                     ": the C++ tokenizer reads tiktoken files (tokenizer.model), not Hugging Face "
                     "tokenizer.json");
    return Tokenizer(path);
  }
  LLAMA4_CHECK_ARG(fs::is_directory(p, ec), "checkpoint path ", path, " does not exist");
  const fs::path model = p / "tokenizer.model";
  if (fs::is_regular_file(model, ec)) return Tokenizer(model.string());
  LLAMA4_CHECK_ARG(!fs::is_regular_file(p / "tokenizer.json", ec), path,
                   " has a tokenizer.json but no tokenizer.model: the C++ tokenizer reads tiktoken "
                   "files only (put Llama 4's tokenizer.model, which ships in the llama-models "
                   "package, beside it)");
  throw ValueError(path + " has no tokenizer.model");
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const AllowedSpecial& allowed) const {
  const size_t bad = utf8_find_invalid(text);
  LLAMA4_CHECK_ARG(bad == std::string_view::npos, "text is not valid UTF-8 at byte ", bad,
                   " (utf8_replace_invalid() turns such bytes into U+FFFD)");
  const Impl::SpecialMask mask = impl_->mask_of(allowed);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  for (std::string_view piece : text::cut_long_input(text))
    impl_->encode_piece(piece, mask, mask.any(), ids);
  return ids;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  LLAMA4_CHECK_ARG(id >= 0 && id < vocab_size(), "token id ", id, " is outside the vocabulary [0, ",
                   vocab_size(), ")");
  if (id < token_ids::kNumBaseTokens) return impl_->ranks.bytes_of(id);
  return special_token_names()[size_t(id - token_ids::kNumBaseTokens)];
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  for (int32_t id : ids)  // check all first: a bad id anywhere is an error, as in Python
    LLAMA4_CHECK_ARG(id >= 0 && id < vocab_size(), "token id ", id,
                     " is outside the vocabulary [0, ", vocab_size(), ")");
  std::string out;
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    out += token_bytes(id);
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return utf8_replace_invalid(decode_bytes(ids, skip_special_tokens));
}

int32_t Tokenizer::special_token_id(std::string_view name) const {
  const auto it = impl_->special_ids.find(name);
  LLAMA4_CHECK_ARG(it != impl_->special_ids.end(), "unknown special token '", name,
                   "' (names look like '<|eot|>')");
  return it->second;
}

const std::string& Tokenizer::source() const { return impl_->source; }

std::string IncrementalDecoder::feed(int32_t id) {
  const std::string_view bytes = tokenizer_.token_bytes(id);  // checks the id
  if (skip_special_ && tokenizer_.is_special(id)) return std::string();
  return utf8_.feed(bytes);
}

}  // namespace llama4
