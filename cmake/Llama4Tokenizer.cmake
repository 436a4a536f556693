# The C++ tokenizer (csrc/text/) needs PCRE2 (8-bit library, Debian: libpcre2-dev) for the o200k
# pre-tokenizer regex. LLAMA4_TOKENIZER=AUTO (default) builds it when PCRE2 is found, ON requires
# it, OFF leaves it out (a Tokenizer then raises a clear error; chat rendering still works).
# The default comes from the LLAMA4_TOKENIZER environment variable when set (CI sets ON).
# Sets LLAMA4_WITH_TOKENIZER and, when ON, the imported target llama4_pcre2 (a private dependency
# of libllama4: consumers of the installed package never see it).
if(DEFINED ENV{LLAMA4_TOKENIZER} AND NOT "$ENV{LLAMA4_TOKENIZER}" STREQUAL "")
  set(_llama4_tok_default "$ENV{LLAMA4_TOKENIZER}")
else()
  set(_llama4_tok_default AUTO)
endif()
set(LLAMA4_TOKENIZER ${_llama4_tok_default} CACHE STRING
    "Build the C++ tokenizer (needs PCRE2): AUTO (when PCRE2 is found), ON or OFF")
set_property(CACHE LLAMA4_TOKENIZER PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${LLAMA4_TOKENIZER}" _llama4_tok)
if(NOT _llama4_tok MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "LLAMA4_TOKENIZER must be AUTO, ON or OFF, got '${LLAMA4_TOKENIZER}'")
endif()

set(LLAMA4_WITH_TOKENIZER OFF)
set(LLAMA4_PCRE2_VERSION "")
if(NOT _llama4_tok STREQUAL "OFF")
  if(NOT TARGET llama4_pcre2)
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(LLAMA4_PCRE2 QUIET IMPORTED_TARGET libpcre2-8)
    endif()
    if(LLAMA4_PCRE2_FOUND)
      add_library(llama4_pcre2 INTERFACE IMPORTED)
      target_link_libraries(llama4_pcre2 INTERFACE PkgConfig::LLAMA4_PCRE2)
    else()  # no pkg-config: look for the header and library directly
      find_path(LLAMA4_PCRE2_INCLUDE_DIR pcre2.h)
      find_library(LLAMA4_PCRE2_LIBRARY NAMES pcre2-8)
      if(LLAMA4_PCRE2_INCLUDE_DIR AND LLAMA4_PCRE2_LIBRARY)
        add_library(llama4_pcre2 UNKNOWN IMPORTED)
        set_target_properties(llama4_pcre2 PROPERTIES IMPORTED_LOCATION "${LLAMA4_PCRE2_LIBRARY}"
                              INTERFACE_INCLUDE_DIRECTORIES "${LLAMA4_PCRE2_INCLUDE_DIR}")
        file(STRINGS "${LLAMA4_PCRE2_INCLUDE_DIR}/pcre2.h" _pcre2_ver REGEX "^#define PCRE2_(MAJOR|MINOR) ")
        string(REGEX REPLACE ".*PCRE2_MAJOR +([0-9]+).*PCRE2_MINOR +([0-9]+).*" "\\1.\\2"
               LLAMA4_PCRE2_VERSION "${_pcre2_ver}")
      endif()
    endif()
  endif()
  if(TARGET llama4_pcre2)
    set(LLAMA4_WITH_TOKENIZER ON)
    message(STATUS "llama4_native: C++ tokenizer ON (PCRE2 ${LLAMA4_PCRE2_VERSION})")
  elseif(_llama4_tok STREQUAL "ON")
    message(FATAL_ERROR "LLAMA4_TOKENIZER=ON but PCRE2 (libpcre2-8) was not found: install it "
                        "(Debian/Ubuntu: apt-get install libpcre2-dev) or set LLAMA4_TOKENIZER=AUTO/OFF")
  else()
    message(STATUS "llama4_native: C++ tokenizer OFF (PCRE2 not found; Debian: libpcre2-dev)")
  endif()
else()
  message(STATUS "llama4_native: C++ tokenizer OFF (LLAMA4_TOKENIZER=OFF)")
endif()
# Readable by the tests (tests/test_cpp_package.py reads CMakeCache.txt).
set(LLAMA4_WITH_TOKENIZER ${LLAMA4_WITH_TOKENIZER} CACHE INTERNAL "C++ tokenizer built")
