// Meta's chunking and long-run cutting, on code points of UTF-8 text.
#include "text/long_input.h"

#include "text/utf8.h"

namespace llama4::text {

std::vector<std::string_view> split_long_runs(std::string_view s, size_t max_run) {
  std::vector<std::string_view> out;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t start = 0, run_len = 0;
  bool run_is_space = false;
  for (size_t i = 0; i < s.size();) {
    int len;
    const bool is_space = py_isspace(utf8_decode(p + i, &len));
    if (i == 0) run_is_space = is_space;  // Meta: s[0].isspace()
    if (is_space != run_is_space) {
      run_len = 1;
      run_is_space = is_space;
    } else if (++run_len > max_run) {
      out.push_back(s.substr(start, i - start));
      start = i;
      run_len = 1;
    }
    i += size_t(len);
  }
  out.push_back(s.substr(start));
  return out;
}

std::vector<std::string_view> cut_long_input(std::string_view text, size_t max_chars,
                                             size_t max_run) {
  std::vector<std::string_view> out;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t begin = 0;
  do {  // Python's range(0, len(text), max_chars): no chunk at all for empty text
    size_t end = begin, chars = 0;
    while (end < text.size() && chars < max_chars) {
      int len;
      utf8_decode(p + end, &len);
      end += size_t(len);
      ++chars;
    }
    if (end == begin) break;
    for (std::string_view piece : split_long_runs(text.substr(begin, end - begin), max_run))
      out.push_back(piece);
    begin = end;
  } while (begin < text.size());
  return out;
}

}  // namespace llama4::text
