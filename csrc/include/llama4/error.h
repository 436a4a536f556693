// Exceptions thrown by the core, and the check macros that build their messages.
// The Python binding maps ValueError -> ValueError, TypeError -> TypeError, Error -> RuntimeError,
// CacheFullError -> llama4_native._C.CacheFullError (a RuntimeError subclass), ConfigError and
// CheckpointError -> llama4_native.ConfigError / CheckpointError (ValueError subclasses).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace llama4 {

// A failure that is not the caller's fault (allocation, device, internal invariant).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The KV cache has too few free pages for a reservation; nothing was changed, so the caller can
// retry with a smaller batch or after freeing sequences (the scheduler's cue to preempt).
class CacheFullError : public Error {
 public:
  using Error::Error;
};
// An argument has a wrong value or shape.
class ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};
// An argument has a wrong dtype or device kind.
class TypeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A config.json / generation_config.json the engine cannot run: names the field (qualified, e.g.
// "text_config.head_dim"; empty when the file as a whole is wrong, e.g. not JSON) and the file
// (empty when parsed from text). what(): "<file>: config field '<field>': <message>".
class ConfigError : public ValueError {
 public:
  ConfigError(std::string field, const std::string& message, std::string file = "");
  const std::string& field() const { return field_; }
  const std::string& file() const { return file_; }

 private:
  std::string field_, file_;
};
// A checkpoint file, index or tensor that is missing, malformed or not what the config expects;
// the message names the file and the tensor.
class CheckpointError : public ValueError {
 public:
  using ValueError::ValueError;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail
}  // namespace llama4

#define LLAMA4_THROW_IF_NOT(ExcType, cond, ...)                        \
  do {                                                                 \
    if (!(cond)) throw ExcType(::llama4::detail::concat(__VA_ARGS__)); \
  } while (0)

// Argument value/shape check -> ValueError.
#define LLAMA4_CHECK_ARG(cond, ...) LLAMA4_THROW_IF_NOT(::llama4::ValueError, cond, __VA_ARGS__)
// Argument dtype/device check -> TypeError.
#define LLAMA4_CHECK_TYPE(cond, ...) LLAMA4_THROW_IF_NOT(::llama4::TypeError, cond, __VA_ARGS__)
// Internal or runtime condition -> RuntimeError, with the source location.
#define LLAMA4_CHECK(cond, ...) \
  LLAMA4_THROW_IF_NOT(::llama4::Error, cond, __VA_ARGS__, " (", __FILE__, ":", __LINE__, ")")
