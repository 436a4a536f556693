// libFuzzer target: a checkpoint folder whose model.safetensors.index.json is arbitrary bytes, next
// to two valid shards (a.safetensors: x, y; b.safetensors: z). Checkpoint must open it (then every
// listed tensor is readable from its shard) or throw a CheckpointError naming the index file.
#include <cstdint>
#include <string>

#include "fuzz_files.h"
#include "llama4/safetensors.h"
#include "typed_errors.h"

namespace {

// A valid .safetensors file: F32 tensors of shape [2] each, in the order given.
std::string shard(std::initializer_list<const char*> names) {
  std::string header = "{";
  uint64_t offset = 0;
  for (const char* n : names) {
    if (header.size() > 1) header += ",";
    header += std::string("\"") + n + "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(offset + 8) + "]}";
    offset += 8;
  }
  header += "}";
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return file + header + std::string(size_t(offset), '\x01');
}

const std::string& folder() {
  static const std::string dir = [] {
    const std::string d = fuzz::scratch_dir();
    fuzz::write_file(d + "/a.safetensors", shard({"x", "y"}));
    fuzz::write_file(d + "/b.safetensors", shard({"z"}));
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string index = folder() + "/model.safetensors.index.json";
  fuzz::write_file(index, data, size);
  fuzz::expect_typed("fuzz_index", index, [&] {
    const llama4::Checkpoint ck(folder());
    for (const std::string& name : ck.names()) {
      const llama4::Tensor t = ck.get(name);
      if (t.numel() != 2) fuzz::fail("fuzz_index", "tensor '" + name + "' has the wrong size");
    }
  });
  return 0;
}
