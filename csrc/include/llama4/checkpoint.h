// Loading a Hugging Face Llama 4 checkpoint into the engine's weights.
//
//   LoadedCheckpoint ck = load_checkpoint("/models/Llama-4-Scout", {DType::BF16});
//   Engine engine(ck.config.text, DType::BF16, ck.text_weights.views(), EngineOptions{});
//   // ck (its WeightSets) must outlive the engine: the engine holds views.
//
// One table maps every engine tensor (names and layouts in llama4/model.h and llama4/vision.h) to
// the Hugging Face tensor(s) it is built from; several checkpoint layouts are understood (fused or
// per-expert MoE weights, tied lm_head, FP8 experts). Everything is validated from the headers before
// any data is read: missing and unexpected tensors, shapes (from config.json) and dtypes; every
// error is a CheckpointError naming the file and the tensor. A tensor that needs neither a layout
// change nor a dtype conversion is a zero-copy view of the memory-mapped file (read-only memory);
// the others are converted into memory the Tensor owns.
//
// FP8 routed experts (only the experts are ever FP8, Meta's fp8_mixed recipe, LLAMA4.md §5.2):
//  * stored (config.json `quantization_config`):
//    - compressed-tensors: per-expert nn.Linear tensors `experts.{e}.{gate,up,down}_proj.weight`
//      F8_E4M3 [out, in] + `.weight_scale` [out, 1]; 8-bit float weights, static per output channel
//      (strategy "channel"), symmetric, activations dynamic per token. `ignore` lists modules left
//      unquantized: exact names or "re:<regex>" (matched from the start), tried on the full HF name
//      and on the name without "language_model.". No activation bound.
//    - fbgemm_fp8: fused `experts.gate_up_proj` [E, D, 2I] F8_E4M3 + `gate_up_proj_scale` [E, 1, 2I],
//      `experts.down_proj` [E, I, D] + `down_proj_scale` [E, D, 1]; `activation_scale_ub` (default
//      1200) and `modules_to_not_convert` (substrings of module names).
//    The ignore list must agree with the tensors: a MoE layer's experts are all FP8 or all not.
//  * quantized at load (LoadOptions::quantization = "fp8" on a checkpoint without
//    quantization_config): every MoE layer's routed experts except fp8_skip_layers, per output
//    channel with ops::quantize_fp8_rowwise on the stored values, activation_scale_ub 1200 unless given.
//
// INT4 routed experts (W4A16, llama4/moe_int4.h: uint8 [E, N, K/2] + bf16 scales [E, N, K/G]) come
// through the same plan (Fp8Plan::int4_group_size > 0), with the same skip_layers and ignore rules:
//  * stored: compressed-tensors "pack-quantized" with weights num_bits 4, type int, symmetric,
//    strategy "group" (group_size G: a multiple of 32 dividing hidden_size and intermediate_size), no
//    input_activations: per-expert `experts.{e}.{gate,up,down}_proj.weight_packed` I32 [out, in/8]
//    (element k at bits 4(k%8) of word k/8, stored as q + 8), `.weight_scale` BF16 [out, in/G],
//    `.weight_shape` I64 [2] = [out, in]. The words' little-endian bytes are our packing up to the
//    +8 offset: byte ^ 0x88.
//  * quantized at load (quantization = "int4"): the rule of llama4/moe_int4.h on the stored values,
//    group size Fp8Request::int4_group_size (default kMoeInt4DefaultGroup), skip_layers as for FP8.
// INT4 also covers the shared expert (MoE layers) and the dense MLP (llm-compressor's Llama 4 W4A16
// recipe quantizes every Linear outside attention, router, lm_head and vision; llama4/model.h's INT4
// shared / MLP tensors): stored, `feed_forward.shared_expert.{gate,up,down}_proj` and
// `feed_forward.{gate,up,down}_proj` pack-quantized as above, each module all INT4 or all unquantized,
// as the ignore list says (G must then divide intermediate_size_mlp too); quantized at load, every
// layer's shared expert / MLP except skip_layers', so both routes give the same tensors
// (int4_mlp_layers in llama4/memory_plan.h). FP8 stays routed experts only.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "llama4/model.h"
#include "llama4/model_config.h"
#include "llama4/safetensors.h"
#include "llama4/tensor.h"
#include "llama4/vision.h"

namespace llama4 {

// Bytes of checkpoint tensors read so far, and in all.
using LoadProgress = std::function<void(uint64_t done, uint64_t total)>;

// How a load gets quantized experts: FP8, or INT4 when int4_group_size > 0 (the name is historical).
struct Fp8Plan {
  bool stored = false;                  // the checkpoint holds quantized experts (else: quantize at load)
  std::string method;                   // "compressed-tensors" | "fbgemm_fp8" | "fp8" | "int4" (at load)
  int64_t int4_group_size = 0;          // > 0: INT4 experts with this group size along K (else FP8)
  double activation_scale_ub = 0.0;     // per-row amax bound of the activation quantization; 0: none
  std::vector<std::string> ignore;      // stored: modules the checkpoint left unquantized
  std::set<int64_t> skip_layers;        // at load: MoE layers kept in the model dtype
  // Whether the quantization_config leaves `module` (a full HF module name) unquantized; `root` is
  // the text root ("language_model." or "").
  bool ignores(const std::string& module, const std::string& root) const;
};

// What the caller asks for (LoadOptions carries the same fields).
struct Fp8Request {
  std::string quantization;                    // "", "fp8" or "int4"
  std::optional<double> activation_scale_ub;   // overrides the default / the checkpoint's bound (FP8)
  std::vector<int64_t> skip_layers;            // quantization at load only; negative: from the end
  int64_t int4_group_size = 0;                 // "int4" at load: 0 -> kMoeInt4DefaultGroup
};
// The FP8 plan of a checkpoint (none: no FP8 experts). Throws ValueError for bad arguments and
// CheckpointError for a quantization_config the engine cannot run; `where` names the checkpoint.
std::optional<Fp8Plan> make_fp8_plan(const ModelConfig& config, const Fp8Request& request,
                                     const std::string& where = "");

// Engine tensors by name, in load order. Each Tensor keeps its memory alive (a share of the file
// mapping, or its own buffer), so a WeightSet can be copied to another device tensor by tensor.
struct WeightSet {
  std::vector<std::pair<std::string, Tensor>> tensors;

  WeightMap views() const;  // what TextModel / Engine / VisionModel take
  bool contains(const std::string& name) const;
  const Tensor& at(const std::string& name) const;  // std::out_of_range if absent
  size_t size() const { return tensors.size(); }
  // MoE layers whose experts are FP8 (e4m3 layers.{i}.moe.gate_up), ascending.
  std::vector<int> fp8_layers() const;
  // MoE layers whose experts are INT4 (uint8 layers.{i}.moe.gate_up), ascending.
  std::vector<int> int4_layers() const;
  // Layers whose shared expert or dense MLP is INT4 (uint8 moe.shared_gate_up / mlp.gate_up), ascending.
  std::vector<int> int4_mlp_layers() const;
};

// The engine tensors one at a time, in load order: a consumer that copies each tensor elsewhere
// (e.g. to a GPU) never holds more than one converted tensor in host memory. The whole checkpoint is
// validated (headers only) when the stream is made. Tensors shared by two engine names (a tied
// lm_head) are converted once and yielded under both names.
class WeightStream {
 public:
  WeightStream();
  ~WeightStream();
  WeightStream(WeightStream&&) noexcept;
  WeightStream& operator=(WeightStream&&) noexcept;

  // The next engine tensor; false when done.
  bool next(std::string& name, Tensor& tensor);
  uint64_t total_bytes() const;  // checkpoint bytes the stream reads
  size_t count() const;          // engine tensors it yields
  WeightSet collect();           // the rest, as a WeightSet

  struct Impl;
  explicit WeightStream(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// The text decoder's tensors (llama4/model.h names) converted to `dtype` (F32 or BF16); FP8 experts
// as e4m3 + float32 scales when `fp8` says so (stored or quantized at load).
// With a shard of several ranks, every tensor comes in the shard's shape (shard_weight_shape) and
// only the rows, columns and experts the rank holds are read from the file.
WeightStream text_weight_stream(std::shared_ptr<const Checkpoint> checkpoint, const TextConfig& config,
                                DType dtype, const std::optional<Fp8Plan>& fp8 = std::nullopt,
                                LoadProgress progress = {}, const TextShard& shard = TextShard());
WeightSet load_text_weights(std::shared_ptr<const Checkpoint> checkpoint, const TextConfig& config, DType dtype,
                            const std::optional<Fp8Plan>& fp8 = std::nullopt, LoadProgress progress = {});

// The vision tower's tensors (llama4/vision.h names; vision_model.* and multi_modal_projector.*).
bool has_vision_weights(const Checkpoint& checkpoint);
WeightStream vision_weight_stream(std::shared_ptr<const Checkpoint> checkpoint, const VisionConfig& config,
                                  DType dtype, LoadProgress progress = {});
WeightSet load_vision_weights(std::shared_ptr<const Checkpoint> checkpoint, const VisionConfig& config,
                              DType dtype, LoadProgress progress = {});

struct LoadOptions {
  DType dtype = DType::BF16;  // F32 or BF16: the model dtype
  Fp8Request fp8;             // quantization "fp8", activation_scale_ub, fp8_skip_layers
  bool vision = false;        // also load the vision tower (when the checkpoint has one)
  bool check_weights = false; // check_finite() first: reads every byte, so off by default
  LoadProgress progress;      // text weights (then vision weights) bytes read
  // Tensor + expert parallelism: load only rank `rank`'s part of the text weights (llama4/shard.h),
  // one tensor at a time (a converted tensor is sliced before the next is read).
  int rank = 0, world_size = 1;
};

// Scans every floating-point tensor of the checkpoint (F32, BF16, F16, F8_E4M3 as stored, in name
// order) for NaN and infinity; the first one found is a CheckpointError naming the file, the
// tensor, the value and its flat index. Reads the whole checkpoint (see the README for its GB/s).
void check_finite(const Checkpoint& checkpoint, const LoadProgress& progress = {});

struct LoadedCheckpoint {
  std::string path;
  ModelConfig config;  // config.text.moe_fp8_activation_scale_ub / moe_int4_group_size: from the plan
  GenerationConfig generation;
  std::optional<Fp8Plan> fp8;
  std::shared_ptr<const Checkpoint> checkpoint;  // the open files (load the vision tower later)
  WeightSet text_weights;
  WeightSet vision_weights;  // empty unless options.vision and the checkpoint has a vision tower
};

// config.json, generation_config.json and the weights of the checkpoint folder `path`.
LoadedCheckpoint load_checkpoint(const std::string& path, const LoadOptions& options = {});

}  // namespace llama4
