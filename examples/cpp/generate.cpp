// llama4_generate: text generation from C++ alone, through the installed CMake package: the
// checkpoint loader, the tokenizer, the scheduler (prompts batched together, sampling) and the
// incremental detokenizer streaming to stdout.
//
//   llama4_generate --model DIR --prompt TEXT [--prompt TEXT ...] [--max-new-tokens N]
//                   [--temperature T] [--top-p P] [--top-k K] [--seed S] [--chat]
//                   [--dtype bfloat16|float32] [--tokenizer FILE] [--print-ids]
//
// One prompt streams its text as it is generated. Several prompts are served together; each one's
// text is printed when it finishes, under a "--- prompt i" line. A prompt is encoded as generate()
// in Python does: BOS + the text, or with --chat one user turn in the Llama 4 chat format.
// Sampling defaults and stop ids are Python's generate()'s (llama4/generation_defaults.h: greedy
// unless generation_config.json says do_sample); the flags override.
// --print-ids adds one line per prompt: "ids i: <the generated token ids>".
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "llama4/chat.h"
#include "llama4/checkpoint.h"
#include "llama4/engine.h"
#include "llama4/error.h"
#include "llama4/generation_defaults.h"
#include "llama4/scheduler.h"
#include "llama4/tokenizer.h"

namespace {

struct Args {
  std::string model, tokenizer, dtype = "bfloat16";
  std::vector<std::string> prompts;
  int64_t max_new_tokens = 32;
  std::optional<float> temperature, top_p;
  std::optional<int32_t> top_k;
  std::optional<uint64_t> seed;
  bool chat = false, print_ids = false;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "llama4_generate: " << why << "\n"
            << "usage: llama4_generate --model DIR --prompt TEXT [--prompt TEXT ...] [--max-new-tokens N]\n"
               "                       [--temperature T] [--top-p P] [--top-k K] [--seed S] [--chat]\n"
               "                       [--dtype bfloat16|float32] [--tokenizer FILE] [--print-ids]\n";
  std::exit(2);
}

template <typename T>
T number(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    T v;
    if constexpr (std::is_floating_point_v<T>) v = T(std::stod(text, &used));
    else if constexpr (std::is_unsigned_v<T>) v = T(std::stoull(text, &used));
    else v = T(std::stoll(text, &used));
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  usage(flag + " needs a number, got '" + text + "'");
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--chat") { a.chat = true; continue; }
    if (flag == "--print-ids") { a.print_ids = true; continue; }
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string v = argv[++i];
    if (flag == "--model") a.model = v;
    else if (flag == "--prompt") a.prompts.push_back(v);
    else if (flag == "--tokenizer") a.tokenizer = v;
    else if (flag == "--dtype") a.dtype = v;
    else if (flag == "--max-new-tokens") a.max_new_tokens = number<int64_t>(flag, v);
    else if (flag == "--temperature") a.temperature = number<float>(flag, v);
    else if (flag == "--top-p") a.top_p = number<float>(flag, v);
    else if (flag == "--top-k") a.top_k = number<int32_t>(flag, v);
    else if (flag == "--seed") a.seed = number<uint64_t>(flag, v);
    else usage("unknown flag " + flag);
  }
  if (a.model.empty()) usage("--model is required");
  if (a.prompts.empty()) usage("at least one --prompt is required");
  if (a.dtype != "bfloat16" && a.dtype != "float32") usage("--dtype must be bfloat16 or float32");
  if (a.max_new_tokens < 0) usage("--max-new-tokens must be >= 0");
  return a;
}

// generate()'s defaults (llama4/generation_defaults.h), then the flags.
llama4::SamplingParams sampling_params(const Args& a, const llama4::GenerationConfig& gc) {
  llama4::SamplingParams p = llama4::default_sampling(gc);
  if (a.temperature) p.temperature = *a.temperature;
  if (a.top_p) p.top_p = *a.top_p;
  if (a.top_k) p.top_k = *a.top_k;
  p.seed = a.seed;
  p.validate();  // before the weights are read: a bad flag fails fast
  return p;
}

std::vector<int32_t> encode(const llama4::Tokenizer& tok, const std::string& prompt, bool chat) {
  if (chat) return llama4::chat::encode(tok, {llama4::chat::message("user", prompt)});
  std::vector<int32_t> ids{tok.bos_id()};
  const std::vector<int32_t> text = tok.encode(prompt);
  ids.insert(ids.end(), text.begin(), text.end());
  return ids;
}

int run(const Args& a) {
  const llama4::Tokenizer tok =
      a.tokenizer.empty() ? llama4::Tokenizer::from_checkpoint(a.model) : llama4::Tokenizer(a.tokenizer);
  llama4::LoadOptions load;
  load.dtype = a.dtype == "float32" ? llama4::DType::F32 : llama4::DType::BF16;
  const llama4::GenerationConfig gc = llama4::load_generation_config(a.model);
  const llama4::SamplingParams params = sampling_params(a, gc);
  const llama4::LoadedCheckpoint ck = llama4::load_checkpoint(a.model, load);

  llama4::EngineOptions options;
  options.max_sequences = int(a.prompts.size());
  llama4::Engine engine(ck.config.text, load.dtype, ck.text_weights.views(), options);
  llama4::Scheduler scheduler(engine);

  const std::vector<int32_t> stops = llama4::default_stop_ids(ck.generation, ck.config);
  std::map<int64_t, size_t> index_of;  // request id -> prompt index
  for (size_t i = 0; i < a.prompts.size(); ++i) {
    llama4::GenerationRequest r;
    r.prompt = encode(tok, a.prompts[i], a.chat);
    r.sampling = params;
    if (params.seed && a.prompts.size() > 1) r.sampling.seed = *params.seed + i;  // as generate()
    r.max_new_tokens = a.max_new_tokens;
    r.stop_token_ids = stops;
    index_of[scheduler.add_request(std::move(r))] = i;
  }

  const bool live = a.prompts.size() == 1;
  std::vector<llama4::IncrementalDecoder> text(a.prompts.size(), llama4::IncrementalDecoder(tok));
  std::vector<std::string> done_text(a.prompts.size());
  std::vector<std::vector<int32_t>> ids(a.prompts.size());
  int status = 0;
  while (scheduler.has_unfinished()) {
    for (const llama4::SampleOutput& o : scheduler.step()) {
      const size_t i = index_of.at(o.request_id);
      std::string piece;
      for (int32_t t : o.tokens) {
        ids[i].push_back(t);
        if (std::find(stops.begin(), stops.end(), t) == stops.end()) piece += text[i].feed(t);  // as Python
      }
      if (o.finish != llama4::FinishReason::None) piece += text[i].flush();
      if (live) {
        std::cout << piece << std::flush;
      } else {
        done_text[i] += piece;
      }
      if (o.finish == llama4::FinishReason::None) continue;
      if (o.finish == llama4::FinishReason::Error) {
        std::cerr << "\nllama4_generate: prompt " << i << ": " << o.error << "\n";
        status = 1;
      }
      if (live) std::cout << "\n";
      else std::cout << "--- prompt " << i << " (" << llama4::finish_reason_name(o.finish) << ")\n" << done_text[i] << "\n";
    }
  }
  if (a.print_ids) {
    for (size_t i = 0; i < ids.size(); ++i) {
      std::cout << "ids " << i << ":";
      for (int32_t t : ids[i]) std::cout << " " << t;
      std::cout << "\n";
    }
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  try {
    return run(args);
  } catch (const std::exception& e) {  // llama4::Error subclasses name the file, field or argument
    std::cerr << "llama4_generate: " << e.what() << "\n";
    return 1;
  }
}
