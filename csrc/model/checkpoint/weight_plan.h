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
};

constexpr const char* kFloatDTypes[] = {"F32", "F16", "BF16"};

// dtype and shape of a checkpoint tensor against the table (CheckpointError naming it).
void check_tensor(const TensorInfo& info, const Shape& expected, bool fp8);
std::string shape_repr(const Shape& s);  // "[4, 64]"

WeightStream make_weight_stream(std::shared_ptr<const Checkpoint> checkpoint, std::vector<PlannedTensor> plan,
                                LoadProgress progress);

}  // namespace llama4::checkpoint
