// JSON for the checkpoint loader (private: nlohmann-json never reaches an installed header).
// parse_json bounds the nesting depth (a hostile file cannot exhaust the stack or memory through
// recursion) and can reject duplicate object keys; py_repr spells values as Python's repr does, so
// messages read the same as the Python tools' ("got 'F64'", "got None").
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace llama4::checkpoint {

using json = nlohmann::json;

constexpr int kMaxJsonDepth = 128;

// Parses `text` into `out`; on failure returns false with a one-line reason in `error`.
bool parse_json(const std::string& text, json& out, std::string& error, bool unique_keys = false);
// The whole file; false with the OS's reason in `error` when it cannot be read.
bool read_text_file(const std::string& path, std::string& out, std::string& error);

// A folder's file `name`, or `path` itself when it is not a folder.
std::string file_in_folder(const std::string& path, const char* name);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);

// `s` with every byte outside printable ASCII written as \xNN (for messages quoting file bytes).
std::string printable(const std::string& s);
std::string py_repr(const json& v);  // 'abc', 12, 1.5, True, None, [1, 2], {'a': 1}
std::string type_name(const json& v);  // Python's names: dict, list, str, int, float, bool, NoneType
bool truthy(const json& v);  // Python truthiness: null, false, 0, "", [], {} are false
bool is_int(const json& v);  // an integer (not a bool, not a float)
bool is_number(const json& v);  // int or float (not a bool)

}  // namespace llama4::checkpoint
