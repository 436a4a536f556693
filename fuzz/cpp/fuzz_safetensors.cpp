// libFuzzer target: one .safetensors file of arbitrary bytes. SafetensorsFile must accept it (then
// every tensor view lies inside the mapping and its bytes can be read) or throw a CheckpointError
// naming the file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz_files.h"
#include "llama4/safetensors.h"
#include "typed_errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::scratch_dir() + "/fuzz.safetensors";
  fuzz::write_file(path, data, size);
  fuzz::expect_typed("fuzz_safetensors", path, [&] {
    const llama4::SafetensorsFile file(path);
    const auto [first, last] = file.address_range();
    uint64_t total = 0;
    for (const std::string& name : file.names()) {
      const llama4::TensorInfo& info = file.info(name);
      const llama4::Tensor t = file.get(name);
      const auto* p = static_cast<const unsigned char*>(t.data());
      if (reinterpret_cast<uintptr_t>(p) < first || reinterpret_cast<uintptr_t>(p) + info.nbytes() > last)
        fuzz::fail("fuzz_safetensors", "tensor '" + name + "' lies outside the mapping");
      for (uint64_t i = 0; i < info.nbytes(); ++i) total += p[i];  // every byte readable
    }
    (void)total;
  });
  return 0;
}
