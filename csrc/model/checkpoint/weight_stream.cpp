// Executes a weight plan: each engine tensor is a zero-copy view of the mapped file when no
// conversion is needed, else assembled into owned memory (concatenation, dtype conversion with
// PyTorch's rounding, FP8 / INT4 quantization at load). Hugging Face's fused float experts stay in
// their layout, as KN views (ops::expert_layout) of the file (or of their dtype conversion); only
// the quantizers transpose them, one expert at a time. One engine tensor at a time, so converting
// costs at most one expert's transient copy.
#include <algorithm>
#include <cstring>
#include <deque>
#include <map>

#include "llama4/context.h"
#include "llama4/error.h"
#include "llama4/moe_int4.h"
#include "llama4/ops.h"
#include "model/checkpoint/json_util.h"
#include "model/checkpoint/weight_plan.h"

namespace llama4::checkpoint {

namespace {

// dst[j, i] = src[i, j]: src [a, b] with row stride `ld` (elements), dst [b, a] contiguous.
template <typename T>
void transpose(T* dst, const T* src, int64_t a, int64_t b, int64_t ld) {
  constexpr int64_t kBlock = 32;  // a 32x32 tile of both stays in L1
#pragma omp parallel for schedule(static) if (a * b > (1 << 16))
  for (int64_t j0 = 0; j0 < b; j0 += kBlock) {
    for (int64_t i0 = 0; i0 < a; i0 += kBlock) {
      const int64_t i1 = std::min(a, i0 + kBlock), j1 = std::min(b, j0 + kBlock);
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < i1; ++i) dst[j * a + i] = src[i * ld + j];
    }
  }
}

// The transpose of one expert's [a, b] block into dst [b, a] (contiguous, same dtype).
void transpose_block(const TensorView& dst, const TensorView& src) {
  const int64_t a = src.size(0), b = src.size(1), ld = src.stride(0);
  switch (element_size(src.dtype)) {
    case 1: transpose(dst.ptr<uint8_t>(), src.ptr<const uint8_t>(), a, b, ld); break;
    case 2: transpose(dst.ptr<uint16_t>(), src.ptr<const uint16_t>(), a, b, ld); break;
    case 4: transpose(dst.ptr<uint32_t>(), src.ptr<const uint32_t>(), a, b, ld); break;
    default: transpose(dst.ptr<uint64_t>(), src.ptr<const uint64_t>(), a, b, ld); break;
  }
}

// dst (contiguous) = src converted to dst's dtype. The loader works in host memory (the CPU context).
void convert(const TensorView& dst, const TensorView& src) {
  if (dst.dtype == src.dtype) {
    ops::copy(Context::cpu(), dst, src);
  } else {
    ops::cast(Context::cpu(), dst, src);
  }
}

// Expert e's block of a fused [E, a, b] source, transposed to [b, a] in the source dtype.
Tensor transposed_expert(const TensorView& fused, int64_t e) {
  const TensorView block = fused.select0(e);
  Tensor t = Tensor::empty({block.size(1), block.size(0)}, block.dtype);
  transpose_block(t.view(), block);
  return t;
}

// Stored INT4: the int32 words' little-endian bytes hold k = 2j (low nibble) and 2j + 1 (high) as
// q + 8; our nibbles are q in two's complement, i.e. (q + 8) ^ 8 per nibble.
Tensor assemble_int4_words(const PlannedTensor& p, const std::vector<Tensor>& pieces) {
  Tensor out = Tensor::empty(p.shape, DType::U8);
  uint8_t* at = out.ptr<uint8_t>();
  for (const Tensor& piece : pieces) {
    const int64_t n = piece.numel() * int64_t(element_size(piece.dtype()));
    const uint8_t* src = static_cast<const uint8_t*>(piece.data());
    for (int64_t i = 0; i < n; ++i) at[i] = uint8_t(src[i] ^ 0x88u);
    at += n;
  }
  LLAMA4_CHECK(at - out.ptr<uint8_t>() == out.numel(), "weight table bug: the pieces of '", p.name, "' do not fill it");
  return out;
}

// The part of a piece a rank reads: rows or experts as a view of the mapped file (only those pages
// are ever touched), columns of a 2-D piece copied row by row.
Tensor cut_piece(const Tensor& piece, const PieceCut& cut) {
  const TensorView& v = piece.view();
  if (cut.dim < 0) return piece;
  if (cut.dim == 0) return Tensor::wrap(v.slice0(cut.first, cut.first + cut.count), piece.storage());
  LLAMA4_CHECK(cut.dim == 1 && v.ndim == 2, "weight plan bug: a column cut of a ", v.ndim, "-D tensor");
  const int64_t rows = v.size(0), cols = v.size(1), es = int64_t(element_size(v.dtype));
  Tensor out = Tensor::empty({rows, cut.count}, v.dtype);
  const char* src = static_cast<const char*>(v.data);
  char* dst = static_cast<char*>(out.data());
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * cut.count * es, src + (r * cols + cut.first) * es, size_t(cut.count * es));
  return out;
}

PieceCut cut_of(const PlannedTensor& p, size_t piece) { return piece < p.cuts.size() ? p.cuts[piece] : PieceCut{}; }

// Bytes of a source tensor that its cut reads (for the load progress).
uint64_t read_bytes(const TensorInfo& info, const PieceCut& cut) {
  if (cut.dim < 0) return info.nbytes();
  return info.nbytes() / uint64_t(info.shape[size_t(cut.dim)]) * uint64_t(cut.count);
}

// A fused [E, a, b] piece (x @ W) as the engine's [E, b, a] in the KN layout (ops::expert_layout):
// the piece itself when its dtype is the engine's (zero-copy: the mapped file, or a rank's experts
// of it), else its conversion in the same layout.
Tensor fused_experts(const PlannedTensor& p, const Tensor& piece) {
  Tensor src = piece;
  if (piece.dtype() != p.dtype) {
    src = Tensor::empty(piece.view().sizes(), p.dtype);
    convert(src.view(), piece.view());
  }
  const TensorView& v = src.view();
  const int64_t E = v.size(0), a = v.size(1), b = v.size(2);
  LLAMA4_CHECK(v.is_contiguous() && Shape({E, b, a}) == p.shape, "weight table bug: '", p.name,
               "' is not a fused [E, a, b] piece");
  return Tensor::wrap(TensorView(v.data, p.dtype, {E, b, a}, {a * b, 1, b}, v.device), src.storage());
}

Tensor assemble(const PlannedTensor& p, const std::vector<Tensor>& pieces) {
  if (p.int4_words) return assemble_int4_words(p, pieces);
  const bool float_experts = p.dtype == DType::F32 || p.dtype == DType::BF16;
  if (p.layout == Layout::FusedExperts && float_experts) return fused_experts(p, pieces[0]);
  const bool fills = pieces.size() == 1 && pieces[0].numel() == TensorView(nullptr, p.dtype, p.shape).numel();
  if (p.layout == Layout::Concat && fills && pieces[0].dtype() == p.dtype)
    return Tensor::wrap(pieces[0].view().reshape(p.shape), pieces[0].storage());  // zero-copy
  Tensor out = p.zero_fill ? Tensor::zeros(p.shape, p.dtype) : Tensor::empty(p.shape, p.dtype);
  if (p.layout == Layout::FusedExperts) {  // stored FP8 experts: the FP8 kernels read [E, N, K]
    const TensorView& src = pieces[0].view();
    for (int64_t e = 0; e < src.size(0); ++e) transpose_block(out.view().select0(e), src.select0(e));
    return out;
  }
  char* at = static_cast<char*>(out.data());
  int64_t filled = 0;
  for (const Tensor& piece : pieces) {  // element after element, in order
    convert(TensorView(at, p.dtype, piece.view().sizes()), piece.view());
    at += piece.numel() * int64_t(element_size(p.dtype));
    filled += piece.numel();
  }
  LLAMA4_CHECK(p.zero_fill ? filled <= out.numel() : filled == out.numel(), "weight plan bug: the pieces of '",
               p.name, "' hold ", filled, " elements for ", out.numel());
  return out;
}

// Expert weights [E, N, K] -> (e4m3 [E, N, K], float32 [E, N]): one scale per output channel, from
// the stored values (before any model-dtype conversion), no amax bound.
std::pair<Tensor, Tensor> quantize_experts(const PlannedTensor& p, const std::vector<Tensor>& pieces) {
  const int64_t E = p.shape[0], N = p.shape[1], K = p.shape[2];
  Tensor q = Tensor::empty(p.shape, DType::F8E4M3), scale = Tensor::empty({E, N}, DType::F32);
  const TensorView q_rows = q.view().reshape({E * N, K}), s_rows = scale.view().reshape({E * N});
  int64_t r = 0;
  const auto put = [&](const TensorView& block) {  // block: [rows, K]
    ops::quantize_fp8_rowwise(Context::cpu(), q_rows.slice0(r, r + block.size(0)), s_rows.slice0(r, r + block.size(0)), block, 0.f);
    r += block.size(0);
  };
  if (p.layout == Layout::FusedExperts) {
    for (int64_t e = 0; e < E; ++e) put(transposed_expert(pieces[0].view(), e).view());
  } else {
    for (const Tensor& piece : pieces) put(piece.view().reshape({piece.numel() / K, K}));
  }
  LLAMA4_CHECK(r == E * N, "weight table bug: the pieces of '", p.name, "' do not fill it");
  return {std::move(q), std::move(scale)};
}

// Expert weights [E, N, K] -> (uint8 [E, N, K/2], bfloat16 [E, N, K/G]), or a shared expert's / MLP's
// [N, K] -> ([N, K/2], [N, K/G]): llama4/moe_int4.h's rule on the stored values (before any
// model-dtype conversion), one piece (expert) at a time.
std::pair<Tensor, Tensor> quantize_experts_int4(const PlannedTensor& p, const std::vector<Tensor>& pieces) {
  const int64_t K = p.shape.back(), G = p.int4_group, rows = TensorView(nullptr, p.dtype, p.shape).numel() / K;
  Shape q_shape = p.shape, s_shape = p.shape;
  q_shape.back() = K / 2;
  s_shape.back() = K / G;
  Tensor q = Tensor::empty(q_shape, DType::U8), scale = Tensor::empty(s_shape, DType::BF16);
  const TensorView q_rows = q.view().reshape({rows, K / 2}), s_rows = scale.view().reshape({rows, K / G});
  int64_t r = 0;
  const auto put = [&](const TensorView& block) {  // block: [rows, K]
    TensorView src = block;
    Tensor widened;
    if (block.dtype == DType::F16) {  // the quantizer takes f32/bf16: f16 widens exactly
      widened = Tensor::empty(block.sizes(), DType::F32);
      ops::cast(Context::cpu(), widened.view(), block);
      src = widened.view();
    }
    ops::quantize_int4_grouped(Context::cpu(), q_rows.slice0(r, r + block.size(0)),
                               s_rows.slice0(r, r + block.size(0)), src, G);
    r += block.size(0);
  };
  try {
    if (p.layout == Layout::FusedExperts) {
      for (int64_t e = 0; e < p.shape[0]; ++e) put(transposed_expert(pieces[0].view(), e).view());
    } else {
      for (const Tensor& piece : pieces) put(piece.view().reshape({piece.numel() / K, K}));
    }
  } catch (const ValueError& err) {  // a non-finite weight: name the tensor
    throw CheckpointError("'" + p.hf_names[0] + "' (quantized to INT4 at load): " + err.what());
  }
  LLAMA4_CHECK(r == rows, "weight table bug: the pieces of '", p.name, "' do not fill it");
  return {std::move(q), std::move(scale)};
}

std::string cache_key(const PlannedTensor& p) {
  std::string k = std::to_string(int(p.layout)) + "|" + dtype_name(p.dtype) + "|" + shape_repr(p.shape);
  for (size_t i = 0; i < p.hf_names.size(); ++i) {
    k += "|" + p.hf_names[i];
    if (i < p.cuts.size() && p.cuts[i].dim >= 0)
      k += "@" + std::to_string(p.cuts[i].dim) + ":" + std::to_string(p.cuts[i].first) + "+" + std::to_string(p.cuts[i].count);
  }
  return k;
}

}  // namespace

std::string shape_repr(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void check_tensor(const TensorInfo& info, const Shape& expected, Stored stored) {
  if (info.dtype == "F8_E4M3" && stored != Stored::Fp8)
    throw CheckpointError(info.file + ": tensor '" + info.name +
                          "' is F8_E4M3, but FP8 is supported for the routed experts only");
  const bool float_ok = std::find(std::begin(kFloatDTypes), std::end(kFloatDTypes), info.dtype) != std::end(kFloatDTypes);
  const char* want = "F32, F16, BF16";
  bool ok = float_ok;
  switch (stored) {
    case Stored::Float: break;
    case Stored::Fp8: ok = info.dtype == "F8_E4M3"; want = "F8_E4M3"; break;
    case Stored::Int4Words: ok = info.dtype == "I32"; want = "I32 (packed int4)"; break;
    case Stored::Int4Scale: ok = info.dtype == "BF16"; want = "BF16 (the engine keeps INT4 scales as stored)"; break;
  }
  if (!ok)
    throw CheckpointError(info.file + ": tensor '" + info.name + "' has dtype " + info.dtype + "; expected " +
                          (stored == Stored::Float ? "one of " : "") + want);
  if (info.shape != expected)
    throw CheckpointError(info.file + ": tensor '" + info.name + "' has shape " + shape_repr(info.shape) + ", expected " +
                          shape_repr(expected) + " from config.json");
}

}  // namespace llama4::checkpoint

namespace llama4 {

struct WeightStream::Impl {
  std::shared_ptr<const Checkpoint> ckpt;
  std::vector<checkpoint::PlannedTensor> plan;
  LoadProgress progress;
  size_t next = 0;
  uint64_t total = 0, done = 0;
  size_t count = 0;
  std::map<std::string, int> uses;       // cache key -> engine tensors built from it
  std::map<std::string, Tensor> shared;  // built once, yielded under every name
  std::deque<std::pair<std::string, Tensor>> pending;

  void produce() {
    const checkpoint::PlannedTensor& p = plan[next++];
    std::vector<Tensor> pieces;
    uint64_t bytes = 0;
    for (size_t i = 0; i < p.hf_names.size(); ++i) {
      pieces.push_back(checkpoint::cut_piece(ckpt->get(p.hf_names[i]), checkpoint::cut_of(p, i)));
      bytes += checkpoint::read_bytes(ckpt->info(p.hf_names[i]), checkpoint::cut_of(p, i));
    }
    if (p.quantize != checkpoint::Quantize::None) {
      auto [q, scale] = p.quantize == checkpoint::Quantize::Int4 ? checkpoint::quantize_experts_int4(p, pieces)
                                                                 : checkpoint::quantize_experts(p, pieces);
      pending.emplace_back(p.name, std::move(q));
      pending.emplace_back(p.name + "_scale", std::move(scale));
    } else {
      const std::string key = checkpoint::cache_key(p);
      auto it = shared.find(key);
      Tensor t = it != shared.end() ? it->second : checkpoint::assemble(p, pieces);
      if (uses[key] > 1) shared.emplace(key, t);
      pending.emplace_back(p.name, std::move(t));
    }
    done += bytes;
    if (progress) progress(done, total);
  }
};

WeightStream::WeightStream() = default;
WeightStream::~WeightStream() = default;
WeightStream::WeightStream(WeightStream&&) noexcept = default;
WeightStream& WeightStream::operator=(WeightStream&&) noexcept = default;
WeightStream::WeightStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

bool WeightStream::next(std::string& name, Tensor& tensor) {
  if (!impl_) return false;
  while (impl_->pending.empty() && impl_->next < impl_->plan.size()) impl_->produce();
  if (impl_->pending.empty()) return false;
  name = std::move(impl_->pending.front().first);
  tensor = std::move(impl_->pending.front().second);
  impl_->pending.pop_front();
  return true;
}

uint64_t WeightStream::total_bytes() const { return impl_ ? impl_->total : 0; }
size_t WeightStream::count() const { return impl_ ? impl_->count : 0; }

WeightSet WeightStream::collect() {
  WeightSet out;
  std::string name;
  Tensor t;
  while (next(name, t)) out.tensors.emplace_back(std::move(name), std::move(t));
  return out;
}

WeightStream checkpoint::make_weight_stream(std::shared_ptr<const Checkpoint> ckpt, std::vector<PlannedTensor> plan,
                                            LoadProgress progress) {
  auto impl = std::make_unique<WeightStream::Impl>();
  for (const PlannedTensor& p : plan) {
    for (size_t i = 0; i < p.hf_names.size(); ++i) impl->total += read_bytes(ckpt->info(p.hf_names[i]), cut_of(p, i));
    const bool quantize = p.quantize != Quantize::None;
    impl->count += quantize ? 2 : 1;
    if (!quantize) ++impl->uses[cache_key(p)];
  }
  impl->ckpt = std::move(ckpt);
  impl->plan = std::move(plan);
  impl->progress = std::move(progress);
  return WeightStream(std::move(impl));
}

WeightMap WeightSet::views() const {
  WeightMap m;
  for (const auto& [name, t] : tensors) m.emplace(name, t.view());
  return m;
}

bool WeightSet::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(), [&](const auto& kv) { return kv.first == name; });
}

const Tensor& WeightSet::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  throw std::out_of_range("no weight '" + name + "'");
}

namespace {
// The MoE layers whose routed experts (layers.{i}.moe.gate_up) have dtype `dtype`, ascending.
std::vector<int> expert_layers_of(const WeightSet& w, DType dtype) {
  std::vector<int> out;
  const std::string suffix = ".moe.gate_up";
  for (const auto& [n, t] : w.tensors)
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        t.dtype() == dtype)
      out.push_back(std::stoi(n.substr(7)));
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::vector<int> WeightSet::fp8_layers() const { return expert_layers_of(*this, DType::F8E4M3); }
std::vector<int> WeightSet::int4_mlp_layers() const {
  std::vector<int> out;
  for (const auto& [n, t] : tensors) {
    if (t.dtype() != DType::U8 || n.rfind("layers.", 0) != 0) continue;
    const std::string role = weight_role(n);
    if (role == "moe.shared_gate_up" || role == "mlp.gate_up") out.push_back(std::stoi(n.substr(7)));
  }
  std::sort(out.begin(), out.end());
  return out;
}
std::vector<int> WeightSet::int4_layers() const { return expert_layers_of(*this, DType::U8); }

}  // namespace llama4
