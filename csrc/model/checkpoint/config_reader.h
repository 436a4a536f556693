// Typed access to one config.json section, as config parsing needs it: a missing key takes the
// section's default (transformers' class default), and every error is a ConfigError naming the
// qualified field ("text_config.head_dim") and the file.
#pragma once
#include <optional>
#include <string>

#include "llama4/config.h"
#include "llama4/error.h"
#include "model/checkpoint/json_util.h"

namespace llama4::checkpoint {

// Upper bounds of config sizes: far above any Llama 4 checkpoint, and low enough that every
// product the loader and the engine form from them (experts x hidden x 2 x intermediate, layers x
// per-layer tables) stays inside int64 and no loop or table over a count can exhaust memory.
constexpr int64_t kMaxConfigDim = int64_t(1) << 20;          // vocab, hidden, intermediate, head_dim, image size
constexpr int64_t kMaxConfigCount = int64_t(1) << 12;        // layers, heads, experts, channels
constexpr int64_t kMaxConfigPositions = (int64_t(1) << 31) - 1;  // positions are int32 in the kernels

class FieldReader {
 public:
  FieldReader(const json& section, const json& defaults, std::string prefix, std::string file)
      : d_(section), defaults_(defaults), prefix_(std::move(prefix)), file_(std::move(file)) {}

  const json& section() const { return d_; }
  const std::string& file() const { return file_; }
  std::string name(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  ConfigError fail(const std::string& key, const std::string& message) const {
    return ConfigError(name(key), message, file_);
  }
  bool has(const std::string& key) const { return d_.contains(key); }
  // The section's value, else the default, else null.
  const json& raw(const std::string& key) const;

  // An integer >= minimum (none: any); an integral float (8192.0) counts as its integer.
  // `value` replaces the looked-up value (for nested keys such as rope_scaling.factor).
  int64_t integer(const std::string& key, std::optional<int64_t> minimum = 1, const json* value = nullptr) const;
  // A size or count: an integer in [1, maximum] (the bounds below).
  int64_t size(const std::string& key, int64_t maximum, const json* value = nullptr) const;
  // A finite number, > 0 when `positive`, else >= 0.
  double number(const std::string& key, bool positive = true, const json* value = nullptr) const;
  bool boolean(const std::string& key) const;
  // null, an integer or a non-empty list of integers.
  IntOrList token_ids(const std::string& key) const;

 private:
  const json& d_;
  const json& defaults_;
  std::string prefix_, file_;
};

// The JSON spelling of an IntOrList (for defaults that come from another section).
json to_json(const IntOrList& v);

}  // namespace llama4::checkpoint
