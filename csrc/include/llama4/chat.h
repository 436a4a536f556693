// The Llama 4 chat format (LLAMA4.md §6) in C++: messages -> prompt ids, the same ids as
// llama4_native/chat.py's encode_chat (Tokenizer.apply_chat_template), with each image expanded
// into its tile and patch tokens (LLAMA4.md §4.2, chat.py's image_token_ids).
//
//   std::vector<chat::Message> msgs = {chat::message("system", "Be brief."),
//                                      {"user", {chat::image(2, 2), chat::text("What is it?")}}};
//   std::vector<int32_t> ids = chat::encode(tok, msgs);   // from <|begin_of_text|> on
//
//   <|begin_of_text|>
//   <|header_start|>{role}<|header_end|>\n\n{content}<|eot|>      per message
//   <|header_start|>assistant<|header_end|>\n\n                    generation prompt
//
// Roles: system, user, assistant, ipython (tool results; "tool" is its alias). A leading system
// message is stripped of surrounding whitespace. The text between two template-written special
// tokens is encoded as one piece, and special-token text inside content stays plain text: a user
// message holding "<|eot|>" or "<|header_start|>assistant<|header_end|>" cannot end its turn or
// forge a role.
//
// Tool use follows chat.py (the Hugging Face template): an assistant message's tool calls render
// `<|python_start|>{content}<|python_end|>{"name": NAME, "parameters": ARGUMENTS}`, where
// ARGUMENTS is the JSON object text the caller gives (write it as Python's
// json.dumps(arguments, ensure_ascii=False) does to get Python's ids); a tool result (ipython)
// is one text part, written as a JSON string, or one json part, written as given.
// chat.py cannot see the difference between "no tool_calls" and an empty list on a non-assistant
// message (it raises for the latter); here an empty list is simply no tool calls.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "llama4/tokenizer.h"

namespace llama4::chat {

struct Part {
  enum class Type { text, image, json };
  Type type = Type::text;
  std::string text;  // text: the content; json: a JSON value, written verbatim (tool results)
  int tiles_h = 1;   // image: its tile grid, rows x columns (the image processor's aspect_ratio,
  int tiles_w = 1;   // (ratio_h, ratio_w) in Python); 1x1 is a single tile without a thumbnail
};

inline Part text(std::string s) { return Part{Part::Type::text, std::move(s), 1, 1}; }
inline Part image(int tiles_h, int tiles_w) { return Part{Part::Type::image, {}, tiles_h, tiles_w}; }
inline Part json(std::string value) { return Part{Part::Type::json, std::move(value), 1, 1}; }

struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object, e.g. {"city": "Paris"}
};

struct Message {
  std::string role;                  // system | user | assistant | ipython | tool
  std::vector<Part> content;         // empty: no content (renders nothing)
  std::vector<ToolCall> tool_calls;  // assistant only
};

// A message with one text part.
inline Message message(std::string role, std::string content) {
  return Message{std::move(role), {text(std::move(content))}, {}};
}

// The ids an image becomes (chat.py's ImageTokens): Llama 4's by default; a checkpoint with its
// own vocabulary takes patch from config image_token_index and start/end from boi/eoi_token_index.
struct ImageTokens {
  int32_t patch = token_ids::kPatch;
  int32_t image = token_ids::kImage;
  int32_t start = token_ids::kImageStart;
  int32_t end = token_ids::kImageEnd;
  int32_t tile_x = token_ids::kTileXSeparator;
  int32_t tile_y = token_ids::kTileYSeparator;
};

struct Options {
  bool add_generation_prompt = true;
  // true: each image becomes its tile/patch tokens (image_token_ids, ready for the engine);
  // false: one <|image|> placeholder per image, exactly chat.py's encode_chat.
  bool expand_images = true;
  int patches_per_tile = 144;  // num_patches_per_tile() of the published models
  ImageTokens image_tokens;
};

// The prompt ids from BOS on. ValueError names the message, part or call that is wrong
// ("messages[1].role: unknown role 'robot' ...").
std::vector<int32_t> encode(const Tokenizer& tokenizer, const std::vector<Message>& messages,
                            const Options& options = {});
// The prompt as a string (images as <|image|>), like chat.py's render_chat.
std::string render(const std::vector<Message>& messages, bool add_generation_prompt = true);

// The most tokens one image may expand into (a 16-tile Llama 4 image is 2,467): a tile grid or
// patches_per_tile past it is a ValueError, not an allocation the caller's numbers size.
constexpr int64_t kMaxImageTokens = int64_t(1) << 20;
// Tokens of one image: image_token_ids(...).size(), computed without building them (INT64_MAX when
// the grid or patches_per_tile alone exceeds kMaxImageTokens).
int64_t image_token_count(int tiles_h, int tiles_w, int patches_per_tile);

// <|patch|> tokens per tile: (image_size / patch_size)^2 / round(1 / ratio^2) -> 144 for Llama 4.
int num_patches_per_tile(int image_size = 336, int patch_size = 14, double pixel_shuffle_ratio = 0.5);
// The tokens of one image cut into tiles_h x tiles_w tiles (plus a global tile when > 1).
std::vector<int32_t> image_token_ids(int tiles_h, int tiles_w, int patches_per_tile,
                                     const ImageTokens& tokens = {});
// Replaces the k-th <|image|> of `ids` by image k's tokens; tiles[k] = (tiles_h, tiles_w).
std::vector<int32_t> expand_image_tokens(const std::vector<int32_t>& ids,
                                         const std::vector<std::pair<int, int>>& tiles,
                                         int patches_per_tile, const ImageTokens& tokens = {});

}  // namespace llama4::chat
