// libFuzzer target: config.json and generation_config.json parsing. The bytes are parsed as both;
// each either gives a config or throws a ConfigError naming the source file (and, for a field of
// the wrong type or range, the field).
#include <cstdint>
#include <string>

#include "llama4/model_config.h"
#include "typed_errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_typed("fuzz_config", "fuzz/config.json", [&] {
    const llama4::ModelConfig c = llama4::parse_model_config(text, "fuzz/config.json");
    // An accepted config's derived sizes are what the engine allocates from: they must be sane.
    if (c.text.hidden_size < 1 || c.text.num_hidden_layers < 1 || c.text.vocab_size < 1)
      fuzz::fail("fuzz_config", "accepted a config with a non-positive size");
  });
  fuzz::expect_typed("fuzz_config", "fuzz/generation_config.json", [&] {
    (void)llama4::parse_generation_config(text, "fuzz/generation_config.json");
  });
  return 0;
}
