// A weight plan: the engine tensors a load yields, each resolved to the checkpoint tensors it is
// built from and how (validated before any data is read); the WeightStream executes it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "llama4/checkpoint.h"
#include "llama4/shard.h"

namespace llama4::checkpoint {

enum class Quantize : uint8_t { None, Fp8, Int4 };

// What a checkpoint tensor must hold (check_tensor).
enum class Stored : uint8_t {
  Float,       // F32, F16 or BF16
  Fp8,         // F8_E4M3 (FP8 experts)
  Int4Words,   // I32 packed int4 (pack-quantized weight_packed)
  Int4Scale,   // BF16 (pack-quantized weight_scale: kept as stored)
};

// How the source tensors become the engine tensor.
enum class Layout : uint8_t {
  Concat,            // the pieces' elements back to back, in order (one piece: a reshape)
  // One piece [E, a, b] (HF fused experts, x @ W) -> [E, b, a]: float experts as its KN view
  // (ops::expert_layout, no copy when the dtype matches); FP8 ones (stored or quantized at load)
  // and INT4 ones transposed per expert.
  FusedExperts,
};

// The part of one source tensor a rank reads: items [first, first + count) along `dim` (0: rows or
// experts, read as a zero-copy view of the mapped file; 1: columns of a 2-D tensor, copied).
struct PieceCut {
  int dim = -1;  // -1: the whole piece
  int64_t first = 0, count = 0;
};

struct PlannedTensor {
  std::string name;                   // engine name
  Shape shape;                        // engine shape
  std::vector<std::string> hf_names;  // checkpoint tensors, in order
  Layout layout = Layout::Concat;
  DType dtype = DType::BF16;          // engine dtype (F8E4M3 / U8 for stored FP8 / INT4 experts)
  // Quantized at load: yields `name` and `name` + "_scale": e4m3 + f32 [E, N] (Fp8), or packed
  // uint8 [E, N, K/2] + bf16 [E, N, K/int4_group] (Int4, llama4/moe_int4.h).
  Quantize quantize = Quantize::None;
  int64_t int4_group = 0;
  // Stored INT4 (compressed-tensors pack-quantized): the pieces are int32 words of q + 8 nibbles,
  // copied as bytes and turned into two's complement nibbles (byte ^ 0x88).
  bool int4_words = false;
  // One rank's share (tensor + expert parallelism): the part of each source it reads (empty: all
  // of every piece), and whether the pieces fill only the leading elements of `shape` (the rest
  // zeros: a vocabulary shard padded to vocab_padded rows).
  std::vector<PieceCut> cuts;
  bool zero_fill = false;
};

// Rewrites `plan` to yield rank `shard`'s tensors (shard_weight_shape's shapes), reading from each
// source only the rows, columns or experts that rank holds.
void cut_to_shard(std::vector<PlannedTensor>& plan, const TextConfig& config, const TextShard& shard);

constexpr const char* kFloatDTypes[] = {"F32", "F16", "BF16"};

// dtype and shape of a checkpoint tensor against the table (CheckpointError naming it).
void check_tensor(const TensorInfo& info, const Shape& expected, Stored stored);
std::string shape_repr(const Shape& s);  // "[4, 64]"

WeightStream make_weight_stream(std::shared_ptr<const Checkpoint> checkpoint, std::vector<PlannedTensor> plan,
                                LoadProgress progress);

}  // namespace llama4::checkpoint
