// load_checkpoint: config.json, generation_config.json, the FP8 plan and the weights of a folder.
#include "llama4/checkpoint.h"
#include "llama4/error.h"
#include "llama4/shard.h"

namespace llama4 {

LoadedCheckpoint load_checkpoint(const std::string& path, const LoadOptions& options) {
  LLAMA4_CHECK_ARG(options.dtype == DType::F32 || options.dtype == DType::BF16,
                   "dtype must be float32 or bfloat16, got ", dtype_name(options.dtype));
  LoadedCheckpoint out;
  out.path = path;
  out.config = load_model_config(path);
  out.generation = load_generation_config(path);
  out.fp8 = make_fp8_plan(out.config, options.fp8, path);
  out.config.text.moe_fp8_activation_scale_ub = out.fp8 ? float(out.fp8->activation_scale_ub) : 0.f;
  out.config.text.moe_int4_group_size = out.fp8 ? out.fp8->int4_group_size : 0;
  out.checkpoint = std::make_shared<const Checkpoint>(path);
  if (options.check_weights) check_finite(*out.checkpoint);
  const TextShard shard = TextShard::of(out.config.text, options.rank, options.world_size);
  out.text_weights =
      text_weight_stream(out.checkpoint, out.config.text, options.dtype, out.fp8, options.progress, shard).collect();
  if (options.vision && out.config.vision && has_vision_weights(*out.checkpoint))
    out.vision_weights = load_vision_weights(out.checkpoint, *out.config.vision, options.dtype, options.progress);
  return out;
}

}  // namespace llama4
