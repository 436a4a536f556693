// What every libFuzzer target here checks: the code under test either succeeds or throws one of
// the typed errors the API promises (ValueError / TypeError and their subclasses ConfigError and
// CheckpointError), with a message that names what was wrong. Anything else -- another exception
// type (nlohmann's, std::out_of_range, llama4::Error), an empty message, a message that does not
// name the file or field, or a crash, leak or undefined behaviour that the sanitizers see -- stops
// the fuzzer, which saves the input as a crash file (add it to fuzz/corpus/<target>/ once fixed).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

#include "llama4/error.h"

namespace fuzz {

[[noreturn]] inline void fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "\n%s: %s\n", target, what.c_str());
  std::abort();  // libFuzzer reports the abort with the input that caused it
}

// Runs `body`; a typed error must carry a message holding `must_name` (the file, field or argument
// the caller gave; "" accepts any non-empty message).
template <typename Body>
void expect_typed(const char* target, const std::string& must_name, Body&& body) {
  try {
    body();
  } catch (const llama4::ValueError& e) {  // ConfigError and CheckpointError included
    const std::string msg = e.what();
    if (msg.empty()) fail(target, "a ValueError with an empty message");
    if (!must_name.empty() && msg.find(must_name) == std::string::npos)
      fail(target, "the message does not name '" + must_name + "': " + msg);
  } catch (const llama4::TypeError& e) {
    if (std::string(e.what()).empty()) fail(target, "a TypeError with an empty message");
  } catch (const std::exception& e) {
    fail(target, std::string("untyped exception ") + typeid(e).name() + ": " + e.what());
  }
}

}  // namespace fuzz
