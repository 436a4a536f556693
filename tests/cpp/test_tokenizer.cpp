// llama4/tokenizer.h and llama4/chat.h as a C++ application uses them, on Llama 4's real
// tokenizer.model (path in LLAMA4_TOKENIZER_MODEL, set by tests/cpp/CMakeLists.txt from the
// llama-models package): the ids of LLAMA4.md's examples, special tokens, decode and streaming,
// the chat prompt of LLAMA4.md §6 with an image expanded, and the typed errors. Exit code 77
// (skipped) when the path is unknown or the library was built without the tokenizer.
// Exhaustive parity with tiktoken is tests/test_tokenizer_cpp.py's job.
#include <cstdlib>
#include <string>
#include <vector>

#include "check.h"
#include "llama4/build_info.h"
#include "llama4/chat.h"
#include "llama4/error.h"
#include "llama4/tokenizer.h"

namespace {

using Ids = std::vector<int32_t>;

const llama4::Tokenizer& tok() {
  static const llama4::Tokenizer t(std::getenv("LLAMA4_TOKENIZER_MODEL"));
  return t;
}

std::string show_ids(const Ids& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size() && i < 24; ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + (ids.size() > 24 ? ", ...]" : "]");
}

#define CHECK_IDS(a, b)                                                                        \
  do {                                                                                         \
    ++::check::state().checks;                                                                 \
    const Ids check_a_ = (a), check_b_ = (b);                                                  \
    if (check_a_ != check_b_)                                                                  \
      ::check::fail(__FILE__, __LINE__, std::string(#a " == " #b ": ") + show_ids(check_a_) +  \
                                            " vs " + show_ids(check_b_));                      \
  } while (0)

TEST_CASE(encode_spec_examples) {
  // LLAMA4.md §4.1 and the ids Meta's tokenizer gives (tests/test_tokenizer.py).
  CHECK_IDS(tok().encode("Hello world! 12345 is a number.\n\nNew line"),
            (Ids{19873, 3817, 13, 220, 7235, 2127, 373, 262, 1416, 1574, 4191, 1978}));
  CHECK_IDS(tok().encode("user"), Ids{1556});
  CHECK_IDS(tok().encode("assistant"), Ids{140680});
  CHECK_IDS(tok().encode("\n\n"), Ids{368});
  CHECK_IDS(tok().encode(""), Ids{});
  CHECK_EQ(tok().vocab_size(), 202048);
}

TEST_CASE(special_tokens) {
  const std::string text = "a<|eot|>b<|image|>";
  const Ids plain = tok().encode(text);
  for (int32_t id : plain) CHECK(!tok().is_special(id));
  const Ids all = tok().encode(text, llama4::AllowedSpecial::all());
  CHECK_EQ(all.size(), size_t(4));
  CHECK_EQ(all[1], 200008);
  CHECK_EQ(all[3], 200090);
  const Ids eot_only = tok().encode(text, llama4::AllowedSpecial({"<|eot|>"}));
  CHECK_EQ(eot_only[1], 200008);
  CHECK_EQ(tok().special_token_id("<|patch|>"), llama4::token_ids::kPatch);
  CHECK_EQ(llama4::special_token_names()[8], std::string("<|eot|>"));
  CHECK_EQ(std::string(tok().token_bytes(200000)), std::string("<|begin_of_text|>"));
  CHECK(tok().is_stop(tok().eot_id()) && tok().is_stop(tok().eom_id()) && !tok().is_stop(tok().bos_id()));
}

TEST_CASE(decode_and_stream) {
  const std::string text = "naïve 你好 😀 𓀀 👨‍👩‍👧 done";
  const Ids ids = tok().encode(text);
  CHECK_EQ(tok().decode(ids), text);
  Ids with_special = ids;
  with_special.insert(with_special.begin(), tok().bos_id());
  with_special.push_back(tok().eot_id());
  CHECK_EQ(tok().decode(with_special), "<|begin_of_text|>" + text + "<|eot|>");
  CHECK_EQ(tok().decode(with_special, /*skip_special_tokens=*/true), text);

  llama4::IncrementalDecoder stream(tok());
  std::string out;
  int held = 0;
  for (int32_t id : ids) {
    const std::string piece = stream.feed(id);
    held += piece.empty();
    out += piece;
    CHECK(text.compare(0, out.size(), out) == 0);  // every prefix is text: nothing split
  }
  CHECK_EQ(out + stream.flush(), text);
  CHECK(held > 0);  // some token ended inside a character and waited for the next

  // A lone lead byte: held, then one U+FFFD at the end of the stream (as Python does).
  int32_t lead = -1;
  for (int32_t id = 0; id < llama4::token_ids::kNumBaseTokens && lead < 0; ++id)
    if (tok().token_bytes(id) == "\xe4") lead = id;
  CHECK(lead >= 0);
  llama4::IncrementalDecoder broken(tok());
  CHECK_EQ(broken.feed(lead), std::string());
  CHECK_EQ(broken.feed(lead), std::string("\xEF\xBF\xBD"));  // a new lead ends the first
  CHECK_EQ(broken.flush(), std::string("\xEF\xBF\xBD"));
  CHECK_EQ(llama4::utf8_replace_invalid("a\xff" "b\xe4\xbd"), std::string("a\xEF\xBF\xBD" "b\xEF\xBF\xBD"));
}

TEST_CASE(chat_spec_example) {
  namespace chat = llama4::chat;
  const std::vector<chat::Message> msgs = {
      chat::message("system", "You are helpful."),
      {"user", {chat::image(1, 1), chat::text("Describe this.")}, {}},
  };
  const std::string spec =
      "<|begin_of_text|><|header_start|>system<|header_end|>\n\nYou are helpful.<|eot|>"
      "<|header_start|>user<|header_end|>\n\n<|image|>Describe this.<|eot|>"
      "<|header_start|>assistant<|header_end|>\n\n";
  CHECK_EQ(chat::render(msgs), spec);
  chat::Options placeholders;
  placeholders.expand_images = false;
  const Ids ids = chat::encode(tok(), msgs, placeholders);
  CHECK_IDS(ids, tok().encode(spec, llama4::AllowedSpecial::all()));
  CHECK_IDS(Ids(ids.end() - 4, ids.end()), (Ids{200005, 140680, 200006, 368}));

  // Expanded: <|image_start|> <|image|> 144 x <|patch|> <|image_end|> in place of <|image|>.
  const Ids expanded = chat::encode(tok(), msgs);
  Ids want;
  for (int32_t id : ids) {
    if (id != llama4::token_ids::kImage) {
      want.push_back(id);
      continue;
    }
    want.push_back(llama4::token_ids::kImageStart);
    want.push_back(llama4::token_ids::kImage);
    want.insert(want.end(), 144, llama4::token_ids::kPatch);
    want.push_back(llama4::token_ids::kImageEnd);
  }
  CHECK_IDS(expanded, want);
  CHECK_EQ(chat::num_patches_per_tile(), 144);

  // A 2x1 grid: two tiles, each row ended by <|tile_y_separator|>, then the global tile.
  const Ids grid = chat::image_token_ids(2, 1, 2);
  const int32_t S = llama4::token_ids::kImageStart, E = llama4::token_ids::kImageEnd,
                I = llama4::token_ids::kImage, P = llama4::token_ids::kPatch,
                Y = llama4::token_ids::kTileYSeparator;
  CHECK_IDS(grid, (Ids{S, P, P, Y, P, P, Y, I, P, P, E}));
  for (int h = 1; h <= 4; ++h)
    for (int w = 1; w <= 4; ++w)
      for (int ppt : {1, 144}) CHECK_EQ(chat::image_token_count(h, w, ppt), int64_t(chat::image_token_ids(h, w, ppt).size()));
  // found by fuzz_chat: a grid sized by the caller's numbers (and h * w overflowing int) was allocated
  CHECK_THROWS(chat::image_token_ids(1 << 30, 1 << 30, 144), llama4::ValueError, "is more than 1048576 tokens, the most allowed");
  CHECK_THROWS(chat::encode(tok(), {{"user", {chat::text("a"), chat::image(3000, 3000)}, {}}}), llama4::ValueError,
               "messages[0].content[1]: an image of 3000x3000 tiles with 144 patches per tile is");
}

TEST_CASE(errors) {
  CHECK_THROWS(llama4::Tokenizer("/nonexistent/tokenizer.model"), llama4::ValueError,
               "/nonexistent/tokenizer.model", "cannot be read");
  CHECK_THROWS(tok().encode("ok\xff"), llama4::ValueError, "not valid UTF-8 at byte 2");
  CHECK_THROWS(tok().decode({1, 202048}), llama4::ValueError, "outside the vocabulary");
  CHECK_THROWS(tok().special_token_id("<|nope|>"), llama4::ValueError, "unknown special token");
  CHECK_THROWS(tok().encode("x", llama4::AllowedSpecial({"<|nope|>"})), llama4::ValueError,
               "unknown special tokens");
  namespace chat = llama4::chat;
  CHECK_THROWS(chat::encode(tok(), {chat::message("user", "a"), chat::message("robot", "b")}),
               llama4::ValueError, "messages[1].role: unknown role 'robot'");
  CHECK_THROWS(chat::encode(tok(), {{"user", {chat::image(0, 2)}, {}}}), llama4::ValueError,
               "messages[0].content[0]", "at least 1x1");
  CHECK_THROWS(chat::encode(tok(), {{"user", {chat::text("x")}, {{"f", "{}"}}}}), llama4::ValueError,
               "messages[0].tool_calls: only assistant messages");
  // found by fuzz_chat: the tokenizer's own message named no message
  CHECK_THROWS(chat::encode(tok(), {chat::message("user", "a"), {"user", {chat::text("ok"), chat::text("b\xff" "c")}, {}}}),
               llama4::ValueError, "messages[1].content[1]: not valid UTF-8 at byte 1");
  CHECK_THROWS(chat::encode(tok(), {{"assistant", {}, {{"f\xc0", "{}"}}}}), llama4::ValueError,
               "messages[0].tool_calls[0].function.name: not valid UTF-8 at byte 1");
}

}  // namespace

int main() {
  const char* path = std::getenv("LLAMA4_TOKENIZER_MODEL");
  if (!llama4::build_info().tokenizer || path == nullptr || *path == '\0') {
    std::printf("skipped: %s\n", llama4::build_info().tokenizer ? "LLAMA4_TOKENIZER_MODEL is not set"
                                                                 : "built without the C++ tokenizer");
    return 77;
  }
  return check::run_all();
}
