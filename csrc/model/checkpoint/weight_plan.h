// A weight plan: the engine tensors a load yields, each resolved to the checkpoint tensors it is
// built from and how (validated before any data is read); the WeightStream executes it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "llama4/checkpoint.h"

namespace llama4::checkpoint {

// How the source tensors become the engine tensor.
enum class Layout : uint8_t {
  Concat,            // the pieces' elements back to back, in order (one piece: a reshape)
  TransposeExperts,  // one piece [E, a, b] (HF fused experts, x @ W) -> [E, b, a] (nn.Linear)
};

struct PlannedTensor {
  std::string name;                   // engine name
  Shape shape;                        // engine shape
  std::vector<std::string> hf_names;  // checkpoint tensors, in order
  Layout layout = Layout::Concat;
  DType dtype = DType::BF16;          // engine dtype (F8E4M3 for stored FP8 experts)
  bool quantize = false;              // e4m3 at load: yields `name` and `name` + "_scale" [E, N] f32
  // Routed experts of one rank (tensor + expert parallelism): a single [E, ...] source is read from
  // expert `expert_first` on only (shape[0] experts); per-expert sources are already just those.
  int64_t expert_first = -1;          // -1: the whole tensor
};

// Keeps, in every routed-expert tensor of `plan`, only experts [first, first + count): nothing
// else of their data is read.
void restrict_experts(std::vector<PlannedTensor>& plan, int64_t num_experts, int64_t first, int64_t count);

constexpr const char* kFloatDTypes[] = {"F32", "F16", "BF16"};

// dtype and shape of a checkpoint tensor against the table (CheckpointError naming it).
void check_tensor(const TensorInfo& info, const Shape& expected, bool fp8);
std::string shape_repr(const Shape& s);  // "[4, 64]"

WeightStream make_weight_stream(std::shared_ptr<const Checkpoint> checkpoint, std::vector<PlannedTensor> plan,
                                LoadProgress progress);

}  // namespace llama4::checkpoint
