// The checkpoint loader's C++ API without Python (llama4/safetensors.h, model_config.h,
// checkpoint.h): hand-written safetensors files read back zero-copy; damaged ones throw
// CheckpointError naming the file and the tensor; config.json / generation_config.json parsing and
// its ConfigError (field and file); the FP8 plan's checks.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "llama4/checkpoint.h"
#include "llama4/moe_int4.h"
#include "llama4/error.h"
#include "llama4/model_config.h"
#include "llama4/safetensors.h"

using namespace llama4;

namespace {

std::string temp_dir() {
  static std::string dir = [] {
    char tmpl[] = "/tmp/llama4_test_checkpoint_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    return std::string(d ? d : "/tmp");
  }();
  return dir;
}

// u64 little-endian header length | header | data.
std::string write_file(const std::string& name, const std::string& header, const std::string& data,
                       uint64_t header_len = UINT64_MAX) {
  const std::string path = temp_dir() + "/" + name;
  const uint64_t n = header_len == UINT64_MAX ? header.size() : header_len;
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((n >> (8 * i)) & 0xff);
  bytes += header + data;
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return path;
}

// a: F32 [2, 3] = 0..5, b: BF16 [2] = 1.0, -2.0.
const std::string kHeader =
    R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
    R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]}})";
std::string data_bytes() {
  std::string d(28, '\0');
  for (int i = 0; i < 6; ++i) {
    const float v = float(i);
    std::memcpy(&d[size_t(4 * i)], &v, 4);
  }
  const uint16_t b[2] = {0x3F80, 0xC000};
  std::memcpy(&d[24], b, 4);
  return d;
}

}  // namespace

TEST_CASE(good_file_reads_zero_copy) {
  const std::string path = write_file("good.safetensors", kHeader, data_bytes());
  SafetensorsFile f(path);
  CHECK(f.names() == (std::vector<std::string>{"a", "b"}));
  CHECK_EQ(f.metadata().at("format"), std::string("pt"));
  const Tensor a = f.get("a");
  CHECK(a.view().sizes() == (Shape{2, 3}));
  CHECK_EQ(a.ptr<float>()[5], 5.0f);
  const auto [first, last] = f.address_range();
  const auto at = reinterpret_cast<uintptr_t>(a.data());
  CHECK(at >= first && at + 24 <= last);  // a view of the mapping, not a copy
  const TensorInfo& b = f.info("b");
  CHECK_EQ(b.dtype, std::string("BF16"));
  CHECK_EQ(b.nbytes(), uint64_t(4));
  CHECK_EQ(f.get("b").ptr<uint16_t>()[1], uint16_t(0xC000));
}

TEST_CASE(damaged_files_name_the_file_and_tensor) {
  const std::string data = data_bytes();
  const std::string truncated = write_file("truncated.safetensors", kHeader, data.substr(0, 26));
  CHECK_THROWS(SafetensorsFile(truncated), CheckpointError, "truncated.safetensors", "tensor 'b'", "past the end");
  const std::string long_header = write_file("long.safetensors", kHeader, data, uint64_t(1) << 40);
  CHECK_THROWS(SafetensorsFile(long_header), CheckpointError, "long.safetensors", "runs past the end of the file");
  const std::string tiny = write_file("tiny.safetensors", "", "", 0);
  CHECK_THROWS(SafetensorsFile(tiny), CheckpointError, "tiny.safetensors", "header is not valid JSON");
  FILE* f = std::fopen((temp_dir() + "/short.safetensors").c_str(), "wb");
  std::fwrite("\x05\0\0", 1, 3, f);
  std::fclose(f);
  CHECK_THROWS(SafetensorsFile(temp_dir() + "/short.safetensors"), CheckpointError, "short.safetensors",
               "needs an 8-byte header length");
  std::string h = kHeader;
  h.replace(h.find("\"F32\""), 5, "\"F64\"");
  CHECK_THROWS(SafetensorsFile(write_file("f64.safetensors", h, data)), CheckpointError, "f64.safetensors",
               "tensor 'a'", "unknown dtype 'F64'");
  h = kHeader;
  h.replace(h.find("[24,28]"), 7, "[20,24]");
  CHECK_THROWS(SafetensorsFile(write_file("overlap.safetensors", h, data)), CheckpointError, "overlaps");
  CHECK_THROWS(SafetensorsFile(write_file("json.safetensors", "{\"a\":", data)), CheckpointError,
               "json.safetensors", "not valid JSON");
  CHECK_THROWS(SafetensorsFile(temp_dir() + "/absent.safetensors"), CheckpointError, "absent.safetensors");
  CHECK_THROWS(Checkpoint(temp_dir() + "/no-such-folder"), CheckpointError, "no-such-folder");
}

TEST_CASE(config_json_defaults_and_errors) {
  const std::string text =
      R"({"num_hidden_layers": 4, "head_dim": null, "hidden_size": 256, "num_attention_heads": 8,
          "num_key_value_heads": 2, "intermediate_size": 64, "intermediate_size_mlp": 128,
          "vocab_size": 1000, "interleave_moe_layer_step": 2})";
  const ModelConfig c = parse_model_config(R"({"model_type": "llama4", "text_config": )" + text +
                                               R"(, "vision_config": {"hidden_size": 768, "intermediate_size": 3072,
          "vision_output_dim": 4096}})",
                                           "mem.json");
  CHECK_EQ(c.text.head_dim, int64_t(32));  // null -> hidden_size / heads
  CHECK(c.text.moe_layers == (std::vector<int>{1, 3}));
  CHECK(c.text.no_rope_layers == (std::vector<int>{1, 1, 1, 0}));
  CHECK_EQ(c.text.rope_theta, 500000.0);
  CHECK_EQ(c.image_token_index.value_or(0), int64_t(200092));
  CHECK(c.vision.has_value() && c.vision->text_hidden_size == 256 && c.vision->num_hidden_layers == 34);
  // HF's class-default vision config (vision_config null) is inconsistent: fc1 cannot take 5632.
  CHECK_THROWS(parse_model_config(R"({"model_type": "llama4", "text_config": )" + text + R"(, "vision_config": null})"),
               ConfigError, "vision_config.intermediate_size", "5632");
  try {
    parse_model_config(R"({"model_type": "llama4", "text_config": {"hidden_size": "big"}})", "bad.json");
    CHECK(false);
  } catch (const ConfigError& e) {
    CHECK_EQ(e.field(), std::string("text_config.hidden_size"));
    CHECK_EQ(e.file(), std::string("bad.json"));
    CHECK(std::strstr(e.what(), "'big'") != nullptr);
  }
  CHECK_THROWS(parse_model_config("{\"model_type\": ", "x.json"), ConfigError, "x.json", "invalid JSON");
  CHECK_THROWS(load_model_config(temp_dir()), ConfigError, "config.json", "cannot read");
  const GenerationConfig g = parse_generation_config(R"({"eos_token_id": [1, 2], "temperature": 0.6})");
  CHECK(g.eos_token_id.values == (std::vector<int64_t>{1, 2}));
  CHECK_EQ(g.temperature.value_or(0), 0.6);
  CHECK_THROWS(parse_generation_config(R"({"top_k": "x"})", "gen.json"), ConfigError, "gen.json", "top_k");
}

TEST_CASE(fp8_plan_checks) {
  ModelConfig c = parse_model_config(R"({"model_type": "llama4_text", "num_hidden_layers": 4})");
  CHECK(!make_fp8_plan(c, {}).has_value());
  Fp8Request at_load;
  at_load.quantization = "fp8";
  at_load.skip_layers = {0, -1};
  const auto plan = make_fp8_plan(c, at_load);
  CHECK(plan.has_value() && !plan->stored && plan->activation_scale_ub == 1200.0);
  CHECK(plan->skip_layers == (std::set<int64_t>{0, 3}));
  at_load.skip_layers = {4};
  CHECK_THROWS(make_fp8_plan(c, at_load), ValueError, "fp8_skip_layers", "4");
  Fp8Request int4;  // INT4 at load: the same plan, a group size instead of an activation bound
  int4.quantization = "int4";
  int4.skip_layers = {-1};
  const auto p4 = make_fp8_plan(c, int4);
  CHECK(p4.has_value() && p4->method == "int4" && p4->int4_group_size == kMoeInt4DefaultGroup &&
        p4->activation_scale_ub == 0.0 && p4->skip_layers == (std::set<int64_t>{3}));
  int4.int4_group_size = 48;
  CHECK_THROWS(make_fp8_plan(c, int4), ValueError, "int4_group_size 48", "multiple of 32");
  c.quantization_config = R"({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights":
      {"num_bits": 8, "type": "float", "strategy": "tensor"}}}})";
  CHECK_THROWS(make_fp8_plan(c, {}, "ckpt"), CheckpointError, "ckpt/config.json: quantization_config.config_groups.g.weights",
               "strategy 'tensor'");
}

int main() {
  const int status = check::run_all();
  std::system(("rm -rf '" + temp_dir() + "'").c_str());  // the files written above
  return status;
}
