// A minimal test harness for the C++ tests (no framework to install): TEST_CASE registers a
// function, the CHECK macros record failures with file:line and the values involved, and
// check::run_all() runs every case (an unexpected exception fails that case only) and returns
// non-zero when anything failed, which is what CTest looks at.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iomanip>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace check {

struct State {
  int checks = 0;
  int failures = 0;
  std::vector<std::pair<const char*, void (*)()>> cases;
};
inline State& state() {
  static State s;
  return s;
}

struct Registrar {
  Registrar(const char* name, void (*fn)()) { state().cases.emplace_back(name, fn); }
};

// Values as a reader wants them: bytes as numbers, floats with all their digits.
template <typename T>
std::string show(const T& v) {
  std::ostringstream os;
  if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
    os << int(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    os << std::setprecision(9) << v << " (" << std::hexfloat << v << ")";
  } else {
    os << v;
  }
  return os.str();
}

inline void fail(const char* file, int line, const std::string& what) {
  ++state().failures;
  std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline int run_all() {
  for (const auto& [name, fn] : state().cases) {
    const int before = state().failures;
    try {
      fn();
    } catch (const std::exception& e) {
      fail(name, 0, std::string("unexpected exception: ") + e.what());
    }
    std::printf("[%s] %s\n", state().failures == before ? "  OK  " : "FAILED", name);
  }
  std::printf("%d checks, %d failed, in %zu cases\n", state().checks, state().failures,
              state().cases.size());
  return state().failures == 0 ? 0 : 1;
}

}  // namespace check

#define TEST_CASE(name)                                           \
  static void name();                                             \
  static const ::check::Registrar name##_registrar(#name, &name); \
  static void name()

#define CHECK(cond)                                                       \
  do {                                                                    \
    ++::check::state().checks;                                            \
    if (!(cond)) ::check::fail(__FILE__, __LINE__, "CHECK(" #cond ")");   \
  } while (0)

#define CHECK_EQ(a, b)                                                                        \
  do {                                                                                        \
    ++::check::state().checks;                                                                \
    const auto& check_a_ = (a);                                                               \
    const auto& check_b_ = (b);                                                               \
    if (!(check_a_ == check_b_))                                                              \
      ::check::fail(__FILE__, __LINE__, std::string(#a " == " #b ": ") +                      \
                                            ::check::show(check_a_) + " vs " +                \
                                            ::check::show(check_b_));                         \
  } while (0)

// |a - b| <= tol, printing both values.
#define CHECK_NEAR(a, b, tol)                                                                 \
  do {                                                                                        \
    ++::check::state().checks;                                                                \
    const double check_a_ = (a), check_b_ = (b);                                              \
    if (!(std::fabs(check_a_ - check_b_) <= (tol)))                                           \
      ::check::fail(__FILE__, __LINE__, std::string(#a " ~= " #b ": ") +                      \
                                            ::check::show(check_a_) + " vs " +                \
                                            ::check::show(check_b_) + ", tol " #tol);         \
  } while (0)

// Two floats with identical bits (distinguishes -0 from 0; use CHECK(std::isnan(x)) for NaN).
#define CHECK_SAME_FLOAT(a, b)                                                                \
  do {                                                                                        \
    ++::check::state().checks;                                                                \
    const float check_a_ = (a), check_b_ = (b);                                               \
    if (::check::float_bits(check_a_) != ::check::float_bits(check_b_))                       \
      ::check::fail(__FILE__, __LINE__, std::string(#a " is " #b ": ") +                      \
                                            ::check::show(check_a_) + " vs " +                \
                                            ::check::show(check_b_));                         \
  } while (0)

// `expr` throws ExcType whose what() contains every one of the given substrings.
#define CHECK_THROWS(expr, ExcType, ...)                                                      \
  do {                                                                                        \
    ++::check::state().checks;                                                                \
    try {                                                                                     \
      (void)(expr);                                                                           \
      ::check::fail(__FILE__, __LINE__, "no exception from " #expr);                          \
    } catch (const ExcType& e) {                                                              \
      for (const char* want : {__VA_ARGS__})                                                  \
        if (!std::strstr(e.what(), want))                                                     \
          ::check::fail(__FILE__, __LINE__, std::string(#expr ": message '") + e.what() +     \
                                                "' lacks '" + want + "'");                    \
    } catch (const std::exception& e) {                                                       \
      ::check::fail(__FILE__, __LINE__,                                                       \
                    std::string(#expr " threw the wrong type (wanted " #ExcType "): ") +      \
                        e.what());                                                            \
    }                                                                                         \
  } while (0)
