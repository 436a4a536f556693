// A Hugging Face Llama 4 checkpoint folder loaded from C++ with one call, then greedy decoding:
//   llama4_checkpoint_greedy DIR MAX_NEW_TOKENS TOKEN_ID...
// prints the config it read and "greedy: <ids>" (the argmax of each step's logits, fed back). Uses
// only the public headers; a bad checkpoint exits with status 3 and the loader's message (which
// names the file and the field or tensor).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <llama4/checkpoint.h>
#include <llama4/engine.h>
#include <llama4/error.h>

namespace {

int32_t argmax(const llama4::Tensor& logits) {  // logits: [1, vocab] float32
  const float* row = logits.ptr<float>();
  int32_t best = 0;
  for (int64_t v = 1; v < logits.size(1); ++v)
    if (row[v] > row[best]) best = int32_t(v);
  return best;
}

int run(const std::string& dir, int max_new_tokens, std::vector<int32_t> tokens) {
  llama4::LoadOptions options;  // bfloat16 weights; options.fp8.quantization = "fp8" would quantize the experts
  const llama4::LoadedCheckpoint ckpt = llama4::load_checkpoint(dir, options);
  const llama4::TextConfig& text = ckpt.config.text;
  std::printf("loaded %s: %s, %lld layers, hidden %lld, vocab %lld, %zu text tensors, %zu FP8 layers\n",
              dir.c_str(), ckpt.config.architecture.c_str(), (long long)text.num_hidden_layers,
              (long long)text.hidden_size, (long long)text.vocab_size, ckpt.text_weights.size(),
              ckpt.text_weights.fp8_layers().size());

  llama4::EngineOptions engine_options;
  engine_options.kv_cache_bytes = 64ll << 20;
  engine_options.max_sequences = 1;
  // The engine keeps views of the weights: `ckpt` outlives it.
  llama4::Engine engine(text, options.dtype, ckpt.text_weights.views(), engine_options);
  const int64_t seq = engine.add_sequence();
  std::printf("greedy:");
  for (int i = 0; i < max_new_tokens; ++i) {
    llama4::StepRequest request;
    request.seq = seq;
    request.tokens = tokens;  // the prompt first, then the last sampled token
    const int32_t next = argmax(engine.step({request}));
    std::printf(" %d", next);
    tokens = {next};
  }
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s DIR MAX_NEW_TOKENS TOKEN_ID...\n", argv[0]);
    return 2;
  }
  std::vector<int32_t> prompt;
  for (int i = 3; i < argc; ++i) prompt.push_back(int32_t(std::atoi(argv[i])));
  try {
    return run(argv[1], std::atoi(argv[2]), prompt);
  } catch (const llama4::CheckpointError& e) {
    std::fprintf(stderr, "checkpoint error: %s\n", e.what());
  } catch (const llama4::ConfigError& e) {
    std::fprintf(stderr, "config error (field '%s'): %s\n", e.field().c_str(), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 3;
}
