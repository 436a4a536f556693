// check_finite: every floating-point tensor of a checkpoint scanned for NaN and infinity, as
// stored (before any conversion), so that the error names the tensor as the checkpoint spells it.
// The test is on bit patterns (all exponent bits set; for float8_e4m3fn, which has no infinity,
// the two NaN codes 0x7F / 0xFF), OR-reduced over 64 KiB blocks that OpenMP threads scan in
// parallel; only a block that holds a hit is searched for the first element.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "llama4/checkpoint.h"
#include "llama4/error.h"
#include "llama4/numeric.h"

namespace llama4 {

namespace {

constexpr uint64_t kBlockBytes = 64 * 1024;

// Non-finite test of one element's bits, per safetensors dtype; T is the storage word.
template <typename T>
struct NonFinite;
template <>
struct NonFinite<uint32_t> {  // F32
  static bool test(uint32_t b) { return (b & 0x7F800000u) == 0x7F800000u; }
  static double value(uint32_t b) { return f32_from_bits(b); }
};
struct F16Bits {};
template <>
struct NonFinite<uint16_t> {  // BF16
  static bool test(uint16_t b) { return (b & 0x7F80u) == 0x7F80u; }
  static double value(uint16_t b) { return bf16_to_f32(b); }
};
template <>
struct NonFinite<F16Bits> {  // F16 (IEEE binary16), stored as uint16_t
  static bool test(uint16_t b) { return (b & 0x7C00u) == 0x7C00u; }
  static double value(uint16_t b) { return f16_to_f32(b); }
};
template <>
struct NonFinite<uint8_t> {  // F8_E4M3 (e4m3fn): NaN only
  static bool test(uint8_t b) { return (b & 0x7Fu) == 0x7Fu; }
  static double value(uint8_t b) { return fp8e4m3_to_f32(b); }
};

template <typename Tag>
using Word = std::conditional_t<std::is_same_v<Tag, F16Bits>, uint16_t, Tag>;

// Index of the first non-finite element of data[0, n), or -1.
template <typename Tag>
int64_t first_non_finite(const Word<Tag>* data, int64_t n) {
  using W = Word<Tag>;
  const int64_t per_block = int64_t(kBlockBytes / sizeof(W));
  const int64_t blocks = (n + per_block - 1) / per_block;
  int64_t first_block = blocks;
#pragma omp parallel for schedule(static) reduction(min : first_block) if (blocks > 4)
  for (int64_t b = 0; b < blocks; ++b) {
    const W* p = data + b * per_block;
    const int64_t m = std::min(per_block, n - b * per_block);
    bool bad = false;
    for (int64_t i = 0; i < m; ++i) bad |= NonFinite<Tag>::test(p[i]);  // branch-free: vectorizes
    if (bad && b < first_block) first_block = b;
  }
  if (first_block == blocks) return -1;
  for (int64_t i = first_block * per_block; i < n; ++i)
    if (NonFinite<Tag>::test(data[i])) return i;
  return -1;  // unreachable
}

template <typename Tag>
void check_tensor(const TensorInfo& info, const Tensor& t) {
  const auto* data = static_cast<const Word<Tag>*>(t.data());
  const int64_t i = first_non_finite<Tag>(data, info.numel());
  if (i < 0) return;
  const double v = NonFinite<Tag>::value(data[i]);
  const std::string what = v != v ? "NaN" : (v > 0 ? "+inf" : "-inf");
  throw CheckpointError(info.file + ": tensor '" + info.name + "' holds " + what + " at element " + std::to_string(i) +
                        " (flat index, " + info.dtype + ", " + std::to_string(info.numel()) + " elements)");
}

}  // namespace

void check_finite(const Checkpoint& checkpoint, const LoadProgress& progress) {
  uint64_t total = 0, done = 0;
  const std::vector<std::string> names = checkpoint.names();
  for (const std::string& name : names) total += checkpoint.info(name).nbytes();
  for (const std::string& name : names) {
    const TensorInfo& info = checkpoint.info(name);
    const Tensor t = checkpoint.get(name);
    if (info.dtype == "F32") check_tensor<uint32_t>(info, t);
    else if (info.dtype == "BF16") check_tensor<uint16_t>(info, t);
    else if (info.dtype == "F16") check_tensor<F16Bits>(info, t);
    else if (info.dtype == "F8_E4M3") check_tensor<uint8_t>(info, t);
    // integer and bool tensors are always finite
    done += info.nbytes();
    if (progress) progress(done, total);
  }
}

}  // namespace llama4
