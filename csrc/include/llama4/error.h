// Exceptions thrown by the core, and the check macros that build their messages.
// The Python binding maps ValueError -> ValueError, TypeError -> TypeError, Error -> RuntimeError,
// CacheFullError -> llama4_native._C.CacheFullError (a RuntimeError subclass).
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
