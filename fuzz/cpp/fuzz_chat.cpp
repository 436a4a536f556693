// libFuzzer target: chat message structures -> chat::encode with Llama 4's tokenizer (from
// LLAMA4_TOKENIZER_MODEL). Roles, parts (text with special-token spellings, images with any tile
// grid, json), tool calls and options all come from the input. encode() either throws a ValueError
// naming the message, part or option, or returns a prompt in which only the template wrote control
// tokens: one <|header_start|> per message (+ the generation prompt), one <|eot|> per message.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "llama4/chat.h"
#include "llama4/tokenizer.h"
#include "typed_errors.h"

namespace {

const llama4::Tokenizer& tokenizer() {
  static const llama4::Tokenizer tok = [] {
    const char* path = std::getenv("LLAMA4_TOKENIZER_MODEL");
    if (!path || !*path) fuzz::fail("fuzz_chat", "set LLAMA4_TOKENIZER_MODEL to Llama 4's tokenizer.model");
    return llama4::Tokenizer(path);
  }();
  return tok;
}

const char* const kRoles[] = {"system", "user", "assistant", "ipython", "tool", "robot", ""};
const char* const kSpellings[] = {"<|eot|>", "<|header_start|>assistant<|header_end|>", "<|image|>",
                                  "<|begin_of_text|>", "<|patch|>", "<|eom|>", "\n\n", "{\"a\": 1}"};

std::string some_text(FuzzedDataProvider& in) {
  std::string s = in.ConsumeRandomLengthString(64);
  if (in.ConsumeBool()) s += kSpellings[in.ConsumeIntegralInRange<size_t>(0, std::size(kSpellings) - 1)];
  return s;
}

llama4::chat::Part some_part(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 0: return llama4::chat::text(some_text(in));
    case 1: {
      // Mostly small grids, sometimes any int (negative, huge: products that overflow int).
      const bool wild = in.ConsumeBool();
      const int h = wild ? in.ConsumeIntegral<int>() : in.ConsumeIntegralInRange(0, 5);
      const int w = wild ? in.ConsumeIntegral<int>() : in.ConsumeIntegralInRange(0, 5);
      return llama4::chat::image(h, w);
    }
    default: return llama4::chat::json(some_text(in));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  llama4::chat::Options options;
  options.add_generation_prompt = in.ConsumeBool();
  options.expand_images = in.ConsumeBool();
  options.patches_per_tile = in.ConsumeBool() ? in.ConsumeIntegral<int>() : in.ConsumeIntegralInRange(1, 150);
  std::vector<llama4::chat::Message> messages(in.ConsumeIntegralInRange(0, 6));
  for (auto& m : messages) {
    m.role = in.ConsumeBool() ? in.ConsumeRandomLengthString(10)
                              : kRoles[in.ConsumeIntegralInRange<size_t>(0, std::size(kRoles) - 1)];
    const int parts = in.ConsumeIntegralInRange(0, 3);
    for (int j = 0; j < parts; ++j) m.content.push_back(some_part(in));
    const int calls = in.ConsumeIntegralInRange(0, 2) == 2 ? in.ConsumeIntegralInRange(1, 2) : 0;
    for (int j = 0; j < calls; ++j) m.tool_calls.push_back({some_text(in), some_text(in)});
  }
  std::vector<int32_t> ids;
  bool ok = false;
  try {
    ids = llama4::chat::encode(tokenizer(), messages, options);
    ok = true;
  } catch (const llama4::ValueError& e) {
    const std::string msg = e.what();
    if (msg.rfind("messages[", 0) != 0 && msg.rfind("patches_per_tile", 0) != 0)
      fuzz::fail("fuzz_chat", "the error names no message or option: " + msg);
  } catch (const std::exception& e) {
    fuzz::fail("fuzz_chat", std::string("untyped exception: ") + e.what());
  }
  if (!ok) return 0;
  size_t headers = 0, eots = 0;
  for (int32_t id : ids) {
    headers += id == llama4::token_ids::kHeaderStart;
    eots += id == llama4::token_ids::kEot;
  }
  if (headers != messages.size() + (options.add_generation_prompt ? 1 : 0) || eots != messages.size())
    fuzz::fail("fuzz_chat", "content text became control tokens (headers " + std::to_string(headers) +
                                ", eots " + std::to_string(eots) + " for " + std::to_string(messages.size()) +
                                " messages)");
  return 0;
}
