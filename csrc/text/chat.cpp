// The Llama 4 chat template (chat.py, step for step) and the image-token expansion.
#include "llama4/chat.h"

#include <climits>
#include <cmath>

#include "llama4/error.h"
#include "text/utf8.h"

namespace llama4::chat {
namespace {

// The rendered chat as a list of segments: template-written special tokens, plain text (from
// content or the template), and images (the <|image|> placeholder and the image's tile grid).
struct Segment {
  enum Kind { kSpecial, kText, kImage } kind;
  std::string text;  // special: the token's name; text: the text; image: "<|image|>"
  int tiles_h = 1, tiles_w = 1;
  size_t message = 0, part = 0;  // image: where it came from (for errors)
};

class Segments {
 public:
  void special(const char* name) { parts.push_back({Segment::kSpecial, name}); }
  void text(std::string s) {
    if (!s.empty()) parts.push_back({Segment::kText, std::move(s)});
  }
  void image(int tiles_h, int tiles_w, size_t message, size_t part) {
    parts.push_back({Segment::kImage, "<|image|>", tiles_h, tiles_w, message, part});
  }
  void header(const char* role) {
    special("<|header_start|>");
    text(role);
    special("<|header_end|>");
    text("\n\n");
  }
  std::vector<Segment> parts;
};

std::string where(size_t i) { return "messages[" + std::to_string(i) + "]"; }

// Python's json.dumps(s, ensure_ascii=False): quotes, backslash escapes for " \ and the control
// characters (\b \f \n \r \t, else \u00xx in lowercase hex); everything else as is.
std::string json_quote(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

const char* checked_role(size_t i, const Message& m) {
  for (const char* r : {"system", "user", "assistant", "ipython", "tool"})
    if (m.role == r) return r;
  throw ValueError(where(i) + ".role: unknown role '" + m.role +
                   "' (expected one of system, user, assistant, ipython, tool)");
}

void check_image(size_t i, size_t j, const Part& p) {
  LLAMA4_CHECK_ARG(p.tiles_h >= 1 && p.tiles_w >= 1, where(i), ".content[", j,
                   "]: an image's tile grid must be at least 1x1, got ", p.tiles_h, "x", p.tiles_w);
}

// Text and image parts of a user/assistant/system message.
void content(Segments& out, size_t i, const Message& m) {
  for (size_t j = 0; j < m.content.size(); ++j) {
    const Part& p = m.content[j];
    if (p.type == Part::Type::text) {
      out.text(p.text);
    } else if (p.type == Part::Type::image) {
      check_image(i, j, p);
      out.image(p.tiles_h, p.tiles_w, i, j);
    } else {
      throw ValueError(where(i) + ".content[" + std::to_string(j) +
                       "].type: expected 'text' or 'image', got 'json' (json parts are tool results)");
    }
  }
}

// The leading system message's text, stripped as HF's |trim (Python's str.strip()).
std::string system_text(const Message& m) {
  std::string s;
  for (size_t j = 0; j < m.content.size(); ++j) {
    const Part& p = m.content[j];
    LLAMA4_CHECK_ARG(p.type != Part::Type::image, "messages[0].content: a system message cannot contain images");
    LLAMA4_CHECK_ARG(p.type == Part::Type::text, "messages[0].content[", j,
                     "].type: expected 'text' or 'image', got 'json' (json parts are tool results)");
    s += p.text;
  }
  return text::py_strip(s);
}

std::string tool_result(size_t i, const Message& m) {
  LLAMA4_CHECK_ARG(m.content.size() == 1 && m.content[0].type != Part::Type::image, where(i),
                   ".content: a tool result must be one text part (written as a JSON string) or one "
                   "json part, got ", m.content.size(), " parts");
  const Part& p = m.content[0];
  return p.type == Part::Type::text ? json_quote(p.text) : p.text;
}

// Text the tokenizer would refuse (invalid UTF-8) is reported here, where its message is known.
void check_utf8(size_t i, const Message& m) {
  const auto check = [&](const std::string& text, const std::string& field) {
    const size_t bad = utf8_find_invalid(text);
    LLAMA4_CHECK_ARG(bad == std::string::npos, where(i), field, ": not valid UTF-8 at byte ", bad,
                     " (utf8_replace_invalid() turns such bytes into U+FFFD)");
  };
  for (size_t j = 0; j < m.content.size(); ++j)
    if (m.content[j].type != Part::Type::image) check(m.content[j].text, ".content[" + std::to_string(j) + "]");
  for (size_t j = 0; j < m.tool_calls.size(); ++j) {
    check(m.tool_calls[j].name, ".tool_calls[" + std::to_string(j) + "].function.name");
    check(m.tool_calls[j].arguments, ".tool_calls[" + std::to_string(j) + "].function.arguments");
  }
}

void check_tool_calls(size_t i, const Message& m, const char* role) {
  if (m.tool_calls.empty()) return;
  LLAMA4_CHECK_ARG(std::string(role) == "assistant", where(i),
                   ".tool_calls: only assistant messages can call tools (role is '", role, "')");
  for (size_t j = 0; j < m.tool_calls.size(); ++j) {
    const std::string& a = m.tool_calls[j].arguments;
    LLAMA4_CHECK_ARG(a.size() >= 2 && a.front() == '{' && a.back() == '}', where(i), ".tool_calls[", j,
                     "].function.arguments: expected a JSON object, got '", a.substr(0, 40), "'");
  }
}

std::vector<Segment> segments(const std::vector<Message>& messages, bool add_generation_prompt) {
  Segments out;
  out.special("<|begin_of_text|>");
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const std::string role = checked_role(i, m);
    check_tool_calls(i, m, role.c_str());
    check_utf8(i, m);
    if (role == "ipython" || role == "tool") {
      out.header("ipython");
      out.text(tool_result(i, m));
    } else if (!m.tool_calls.empty()) {
      out.header("assistant");
      out.special("<|python_start|>");
      content(out, i, m);
      out.special("<|python_end|>");
      for (const ToolCall& c : m.tool_calls)
        out.text("{\"name\": \"" + c.name + "\", \"parameters\": " + c.arguments + "}");
    } else if (i == 0 && role == "system") {
      out.header("system");
      out.text(system_text(m));
    } else {
      out.header(role.c_str());
      content(out, i, m);
    }
    out.special("<|eot|>");
  }
  if (add_generation_prompt) out.header("assistant");
  return std::move(out.parts);
}

}  // namespace

std::string render(const std::vector<Message>& messages, bool add_generation_prompt) {
  std::string s;
  for (const Segment& seg : segments(messages, add_generation_prompt)) s += seg.text;
  return s;
}

std::vector<int32_t> encode(const Tokenizer& tokenizer, const std::vector<Message>& messages,
                            const Options& options) {
  LLAMA4_CHECK_ARG(options.patches_per_tile >= 1, "patches_per_tile must be a positive int, got ",
                   options.patches_per_tile);
  std::vector<int32_t> ids;
  std::string pending;  // text between two template-written tokens: encoded as one piece
  auto flush = [&] {
    if (pending.empty()) return;
    const std::vector<int32_t> t = tokenizer.encode(pending, AllowedSpecial::none());
    ids.insert(ids.end(), t.begin(), t.end());
    pending.clear();
  };
  for (const Segment& seg : segments(messages, options.add_generation_prompt)) {
    if (seg.kind == Segment::kText) {
      pending += seg.text;
      continue;
    }
    flush();
    if (seg.kind == Segment::kImage && options.expand_images) {
      const int64_t count = image_token_count(seg.tiles_h, seg.tiles_w, options.patches_per_tile);
      LLAMA4_CHECK_ARG(count <= kMaxImageTokens, where(seg.message), ".content[", seg.part, "]: an image of ",
                       seg.tiles_h, "x", seg.tiles_w, " tiles with ", options.patches_per_tile,
                       " patches per tile is more than ", kMaxImageTokens, " tokens, the most allowed");
      const std::vector<int32_t> img =
          image_token_ids(seg.tiles_h, seg.tiles_w, options.patches_per_tile, options.image_tokens);
      ids.insert(ids.end(), img.begin(), img.end());
    } else {
      ids.push_back(tokenizer.special_token_id(seg.text));
    }
  }
  flush();
  return ids;
}

int num_patches_per_tile(int image_size, int patch_size, double pixel_shuffle_ratio) {
  LLAMA4_CHECK_ARG(image_size >= 1 && patch_size >= 1 && pixel_shuffle_ratio > 0, "num_patches_per_tile: ",
                   "image_size, patch_size and pixel_shuffle_ratio must be positive, got ", image_size,
                   ", ", patch_size, ", ", pixel_shuffle_ratio);
  const int side = image_size / patch_size;
  // Python's round() (half to even) and int(); std::nearbyint rounds half to even too.
  const int shuffle = int(std::nearbyint(1.0 / (pixel_shuffle_ratio * pixel_shuffle_ratio)));
  LLAMA4_CHECK_ARG(shuffle >= 1, "num_patches_per_tile: pixel_shuffle_ratio ", pixel_shuffle_ratio,
                   " is above 1");
  return side * side / shuffle;
}

int64_t image_token_count(int tiles_h, int tiles_w, int patches_per_tile) {
  const int64_t grid = int64_t(tiles_h) * tiles_w, p = patches_per_tile;  // int64: no int overflow
  if (grid > kMaxImageTokens || p > kMaxImageTokens) return INT64_MAX;  // past the bound (grid * p could overflow)
  // start, image, end; local tiles with their x/y separators when more than one; the global tile
  return 3 + p + (grid > 1 ? grid * p + grid : 0);
}

std::vector<int32_t> image_token_ids(int tiles_h, int tiles_w, int patches_per_tile,
                                     const ImageTokens& tokens) {
  LLAMA4_CHECK_ARG(tiles_h >= 1 && tiles_w >= 1, "an image's tile grid must be at least 1x1, got ",
                   tiles_h, "x", tiles_w);
  LLAMA4_CHECK_ARG(patches_per_tile >= 1, "patches_per_tile must be a positive int, got ", patches_per_tile);
  const int64_t count = image_token_count(tiles_h, tiles_w, patches_per_tile);
  LLAMA4_CHECK_ARG(count <= kMaxImageTokens, "an image of ", tiles_h, "x", tiles_w, " tiles with ", patches_per_tile,
                   " patches per tile is more than ", kMaxImageTokens, " tokens, the most allowed");
  std::vector<int32_t> ids = {tokens.start};
  ids.reserve(size_t(count));
  if (tiles_h > 1 || tiles_w > 1) {
    for (int y = 0; y < tiles_h; ++y) {
      for (int x = 0; x < tiles_w; ++x) {
        ids.insert(ids.end(), size_t(patches_per_tile), tokens.patch);
        if (x < tiles_w - 1) ids.push_back(tokens.tile_x);
      }
      ids.push_back(tokens.tile_y);  // after every row, the last one included
    }
  }
  ids.push_back(tokens.image);
  ids.insert(ids.end(), size_t(patches_per_tile), tokens.patch);  // the single or global tile
  ids.push_back(tokens.end);
  return ids;
}

std::vector<int32_t> expand_image_tokens(const std::vector<int32_t>& ids,
                                         const std::vector<std::pair<int, int>>& tiles,
                                         int patches_per_tile, const ImageTokens& tokens) {
  LLAMA4_CHECK_ARG(patches_per_tile >= 1, "patches_per_tile must be a positive int, got ", patches_per_tile);
  for (size_t k = 0; k < tiles.size(); ++k)
    LLAMA4_CHECK_ARG(tiles[k].first >= 1 && tiles[k].second >= 1, "tiles_per_image[", k,
                     "]: expected (ratio_h, ratio_w) of positive ints, got (", tiles[k].first, ", ",
                     tiles[k].second, ")");
  size_t placeholders = 0, patches = 0;
  for (int32_t t : ids) {
    placeholders += t == tokens.image;
    patches += t == tokens.patch;
  }
  LLAMA4_CHECK_ARG(placeholders == tiles.size(), "ids hold ", placeholders,
                   " <|image|> placeholders but tiles_per_image describes ", tiles.size(), " images");
  // An expanded image also holds <|image|>; expanding twice would nest images.
  LLAMA4_CHECK_ARG(patches == 0, "ids already hold <|patch|> tokens: the images look expanded already");
  std::vector<int32_t> out;
  size_t k = 0;
  for (int32_t t : ids) {
    if (t != tokens.image) {
      out.push_back(t);
      continue;
    }
    const std::vector<int32_t> img = image_token_ids(tiles[k].first, tiles[k].second, patches_per_tile, tokens);
    ++k;
    out.insert(out.end(), img.begin(), img.end());
  }
  return out;
}

}  // namespace llama4::chat
