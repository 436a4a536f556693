# Sanitizer and fuzzer builds (CI's build-asan, see fuzz/run.sh and .ci/sanitize):
#   LLAMA4_SANITIZE="address,undefined"  every C++ target compiled and linked with those sanitizers;
#                                        UBSan findings abort (no recovery), so a test fails on them.
#   LLAMA4_BUILD_FUZZERS=ON              also compile for libFuzzer coverage (clang) and build fuzz/cpp.
# A shared library built this way leaves the sanitizer runtime to the executable; Python loads it
# with the runtime preloaded (LD_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so)).
set(LLAMA4_SANITIZE "" CACHE STRING "Sanitizers for every C++ target, e.g. address,undefined")
option(LLAMA4_BUILD_FUZZERS "Build the libFuzzer targets in fuzz/cpp (needs clang)" OFF)

if(LLAMA4_SANITIZE)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${LLAMA4_SANITIZE}>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=all>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=${LLAMA4_SANITIZE})
endif()
if(LLAMA4_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "LLAMA4_BUILD_FUZZERS needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>)
endif()
