// The names of Llama 4's 2,048 special tokens in id order: the same list, built the same way, as
// llama4_native/special_tokens.py (Meta's llama_models/llama4/tokenizer.py).
#include <string>
#include <vector>

#include "llama4/error.h"
#include "llama4/tokenizer.h"

namespace llama4 {
namespace {

void add_reserved(std::vector<std::string>& names, const char* prefix, int count, int start = 0) {
  for (int i = start; i < start + count; ++i)
    names.push_back(std::string("<|") + prefix + "_reserved_special_token_" + std::to_string(i) + "|>");
}

std::vector<std::string> build_names() {
  std::vector<std::string> n = {"<|begin_of_text|>", "<|end_of_text|>", "<|fim_prefix|>",
                                "<|fim_middle|>", "<|fim_suffix|>"};
  // 200005 .. 200079
  for (const char* s : {"<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>", "<|step|>"})
    n.push_back(s);
  add_reserved(n, "text_post_train", 6);
  for (const char* s : {"<|python_start|>", "<|python_end|>", "<|finetune_right_pad|>"}) n.push_back(s);
  add_reserved(n, "text_post_train", 61, 8);
  // 200080 .. 201133
  n.push_back("<|image_start|>");
  n.push_back("<|image_end|>");
  add_reserved(n, "vision", 2);
  n.push_back("<|tile_x_separator|>");
  n.push_back("<|tile_y_separator|>");
  add_reserved(n, "vision", 4, 2);
  n.push_back("<|image|>");
  add_reserved(n, "vision", 1, 6);
  n.push_back("<|patch|>");
  add_reserved(n, "vision", 1041, 7);
  // 201134 .. 201143
  add_reserved(n, "reasoning", 8);
  n.push_back("<|reasoning_thinking_start|>");
  n.push_back("<|reasoning_thinking_end|>");
  // 201144 .. 202047
  const int named = int(n.size());
  for (int i = 0; i < token_ids::kNumSpecialTokens - named; ++i)
    n.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
  LLAMA4_CHECK(int(n.size()) == token_ids::kNumSpecialTokens, "special token table has ", n.size(),
               " names");
  return n;
}

}  // namespace

const std::vector<std::string>& special_token_names() {
  static const std::vector<std::string> names = build_names();
  return names;
}

}  // namespace llama4
