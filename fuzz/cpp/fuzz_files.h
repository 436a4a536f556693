// Scratch files for the fuzz targets whose API reads paths: a private folder made once per process
// (removed at exit), and a helper that replaces a file's contents.
#pragma once
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzz {

inline std::string scratch_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/llama4_fuzz_XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    static std::string removed = tmpl;
    std::atexit([] { std::system(("rm -rf '" + removed + "'").c_str()); });
    return tmpl;
  }();
  return dir;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) std::abort();
}

inline void write_file(const std::string& path, const std::string& text) {
  write_file(path, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace fuzz
