// JSON parsing with a depth bound and duplicate-key detection, file reading, Python-style repr.
#include "model/checkpoint/json_util.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace llama4::checkpoint {

namespace {
struct Rejected {
  std::string reason;
};
}  // namespace

std::string printable(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

bool parse_json(const std::string& text, json& out, std::string& error, bool unique_keys) {
  std::vector<std::set<std::string>> keys;  // one set per open object (unique_keys only)
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth)
      throw Rejected{"nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
    if (!unique_keys) return true;
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second) throw Rejected{"duplicate key '" + k + "'"};
    }
    return true;
  };
  try {
    out = json::parse(text, check);
    return true;
  } catch (const Rejected& r) {
    error = r.reason;
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> from "parse error".
    // nlohmann quotes the bytes it last read, which a damaged file makes arbitrary: escape them, so
    // that the message is printable ASCII (and a valid Python str).
    const std::string what = e.what();
    const size_t at = what.find("] ");
    error = printable(at == std::string::npos ? what : what.substr(at + 2));
  }
  out = json();
  return false;
}

bool read_text_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) {
    error = std::strerror(errno);
    return false;
  }
  out = ss.str();
  return true;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string file_in_folder(const std::string& path, const char* name) {
  if (!is_directory(path)) return path;
  return path + (!path.empty() && path.back() == '/' ? "" : "/") + name;
}

std::string py_repr(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "None";
    case json::value_t::boolean: return v.get<bool>() ? "True" : "False";
    case json::value_t::string: return "'" + v.get_ref<const std::string&>() + "'";
    case json::value_t::array: {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + py_repr(v[i]);
      return s + "]";
    }
    case json::value_t::object: {
      std::string s = "{";
      bool first = true;
      for (const auto& [k, x] : v.items()) {
        s += (first ? "'" : ", '") + k + "': " + py_repr(x);
        first = false;
      }
      return s + "}";
    }
    case json::value_t::number_float: {
      const double d = v.get<double>();
      std::string s = v.dump();
      // nlohmann writes 8192.0 as "8192.0" already; keep Python's spelling of inf for overflow.
      if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
      return s;
    }
    default: return v.dump();
  }
}

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "NoneType";
    case json::value_t::boolean: return "bool";
    case json::value_t::string: return "str";
    case json::value_t::array: return "list";
    case json::value_t::object: return "dict";
    case json::value_t::number_float: return "float";
    default: return "int";
  }
}

bool truthy(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return false;
    case json::value_t::boolean: return v.get<bool>();
    case json::value_t::string: return !v.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object: return !v.empty();
    case json::value_t::number_float: return v.get<double>() != 0.0;
    case json::value_t::number_integer: return v.get<int64_t>() != 0;
    case json::value_t::number_unsigned: return v.get<uint64_t>() != 0;
    default: return true;
  }
}

bool is_int(const json& v) { return v.is_number_integer(); }  // nlohmann: bools are not numbers
bool is_number(const json& v) { return v.is_number(); }

}  // namespace llama4::checkpoint
