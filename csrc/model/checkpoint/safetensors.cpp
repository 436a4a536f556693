// One .safetensors file: header validation (as strict as the reference implementation) and the
// memory map its tensors are views of.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "llama4/error.h"
#include "llama4/safetensors.h"
#include "model/checkpoint/json_util.h"

namespace llama4 {

namespace {

using checkpoint::json;
using checkpoint::py_repr;

constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;  // the reference implementation's limit

struct StDType {
  const char* name;
  DType dtype;
  uint64_t size;
};
constexpr StDType kDTypes[] = {{"F32", DType::F32, 4},    {"F16", DType::F16, 2}, {"BF16", DType::BF16, 2},
                               {"F8_E4M3", DType::F8E4M3, 1}, {"I32", DType::I32, 4}, {"I64", DType::I64, 8},
                               {"U8", DType::U8, 1},      {"BOOL", DType::U8, 1}};

const StDType* find_dtype(const json& name) {
  for (const StDType& t : kDTypes)
    if (name == t.name) return &t;
  return nullptr;
}

std::string supported_dtypes() {
  std::string s;
  for (const StDType& t : kDTypes) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::shared_ptr<void> map_file(int fd, uint64_t size, bool writable, const std::string& path) {
  const int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* p = ::mmap(nullptr, size_t(size), prot, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) throw CheckpointError(path + ": cannot map (" + std::strerror(errno) + ")");
  return std::shared_ptr<void>(p, [size](void* q) { ::munmap(q, size_t(size)); });
}

TensorInfo parse_entry(const std::string& name, const json& e, const std::string& path, uint64_t data_start,
                       uint64_t size) {
  const std::string where = path + ": tensor '" + name + "'";
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
    throw CheckpointError(where + ": entry needs dtype, shape and data_offsets, got " + py_repr(e));
  const json &dtype = e.at("dtype"), &shape = e.at("shape"), &offsets = e.at("data_offsets");
  const StDType* t = find_dtype(dtype);
  if (!t) throw CheckpointError(where + ": unknown dtype " + py_repr(dtype) + " (supported: " + supported_dtypes() + ")");
  bool ok = shape.is_array();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i].is_number_unsigned();
  if (!ok) throw CheckpointError(where + ": shape must be a list of non-negative integers, got " + py_repr(shape));
  if (!(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned()))
    throw CheckpointError(where + ": data_offsets must be [begin, end], got " + py_repr(offsets));
  const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  if (begin > end)
    throw CheckpointError(where + ": data_offsets out of order (" + std::to_string(begin) + " > " + std::to_string(end) + ")");
  unsigned __int128 expected = t->size;
  for (const json& d : shape) {
    expected *= d.get<uint64_t>();
    if (expected >> 64) break;  // stays "too large" below: no span can match it
  }
  if (expected != end - begin) {
    const std::string need = (expected >> 64) ? "more than 2^64" : std::to_string(uint64_t(expected));
    throw CheckpointError(where + ": shape " + py_repr(shape) + " x " + t->name + " needs " + need +
                          " bytes but data_offsets span " + std::to_string(end - begin));
  }
  if (end > size - data_start)
    throw CheckpointError(where + ": data_offsets end " + std::to_string(end) + " is past the end of the file (data section has " +
                          std::to_string(size - data_start) + " bytes; truncated file?)");
  TensorInfo info;
  info.name = name;
  info.dtype = t->name;
  for (const json& d : shape) {
    if (d.get<uint64_t>() > uint64_t(INT64_MAX)) throw CheckpointError(where + ": shape " + py_repr(shape) + " is too large");
    info.shape.push_back(int64_t(d.get<uint64_t>()));
  }
  if (info.shape.size() > size_t(kMaxDims))
    throw CheckpointError(where + ": " + std::to_string(info.shape.size()) + " dimensions; at most " +
                          std::to_string(kMaxDims) + " are supported");
  info.start = data_start + begin;
  info.end = data_start + end;
  info.file = path;
  return info;
}

// The spans, sorted by position, must tile [data_start, size) exactly.
void check_tiling(const std::unordered_map<std::string, TensorInfo>& infos, const std::string& path,
                  uint64_t data_start, uint64_t size) {
  std::vector<const TensorInfo*> order;
  for (const auto& [name, info] : infos) order.push_back(&info);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->start != b->start ? a->start < b->start : a->end != b->end ? a->end < b->end : a->name < b->name;
  });
  uint64_t cursor = data_start;
  const TensorInfo* prev = nullptr;
  const auto rel = [&](const TensorInfo* i) {
    return std::to_string(i->start - data_start) + ".." + std::to_string(i->end - data_start);
  };
  for (const TensorInfo* info : order) {
    if (info->start < cursor)
      throw CheckpointError(path + ": tensor '" + info->name + "' overlaps tensor '" + prev->name + "' (data_offsets " +
                            rel(info) + " vs " + rel(prev) + ")");
    if (info->start > cursor)
      throw CheckpointError(path + ": " + std::to_string(info->start - cursor) + " unused bytes before tensor '" +
                            info->name + "' (data_offsets must tile the data section)");
    cursor = info->end;
    prev = info;
  }
  if (cursor != size) throw CheckpointError(path + ": " + std::to_string(size - cursor) + " trailing bytes after the last tensor");
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

DType safetensors_dtype(const std::string& name) {
  const StDType* t = find_dtype(json(name));
  if (!t) throw CheckpointError("unknown safetensors dtype '" + name + "' (supported: " + supported_dtypes() + ")");
  return t->dtype;
}

SafetensorsFile::SafetensorsFile(const std::string& path, bool writable) : path_(path) {
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  struct stat st {};
  if (fd.fd < 0 || ::fstat(fd.fd, &st) != 0) throw CheckpointError(path + ": cannot read (" + std::strerror(errno) + ")");
  size_ = uint64_t(st.st_size);
  if (size_ < 8)
    throw CheckpointError(path + ": " + std::to_string(size_) +
                          " bytes is too small for a safetensors file (needs an 8-byte header length)");
  mapping_ = map_file(fd.fd, size_, writable, path);
  const auto* bytes = static_cast<const unsigned char*>(mapping_.get());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian u64
  if (n > size_ - 8)
    throw CheckpointError(path + ": header length " + std::to_string(n) + " runs past the end of the file (" +
                          std::to_string(size_) + " bytes; truncated or not a safetensors file)");
  if (n > kMaxHeaderBytes)
    throw CheckpointError(path + ": header length " + std::to_string(n) + " exceeds " + std::to_string(kMaxHeaderBytes) + " bytes");
  json header;
  std::string error;
  if (!checkpoint::parse_json(std::string(reinterpret_cast<const char*>(bytes) + 8, size_t(n)), header, error, true))
    throw CheckpointError(path + ": header is not valid JSON (" + error + ")");
  if (!header.is_object())
    throw CheckpointError(path + ": header must be a JSON object, got " + checkpoint::type_name(header));
  const uint64_t data_start = 8 + n;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (entry.is_null()) continue;
      bool ok = entry.is_object();
      for (auto it = entry.begin(); ok && it != entry.end(); ++it) ok = it->is_string();
      if (!ok) throw CheckpointError(path + ": __metadata__ must map strings to strings");
      for (const auto& [k, v] : entry.items()) metadata_[k] = v.get<std::string>();
      continue;
    }
    infos_.emplace(name, parse_entry(name, entry, path, data_start, size_));
    names_.push_back(name);  // the header object is sorted by name
  }
  check_tiling(infos_, path, data_start, size_);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = infos_.find(name);
  if (it == infos_.end()) throw CheckpointError(path_ + ": no tensor '" + name + "'");
  return it->second;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorInfo& i = info(name);
  char* data = static_cast<char*>(mapping_.get()) + i.start;
  return Tensor::wrap(TensorView(data, safetensors_dtype(i.dtype), i.shape), mapping_);
}

std::pair<uintptr_t, uintptr_t> SafetensorsFile::address_range() const {
  const auto base = reinterpret_cast<uintptr_t>(mapping_.get());
  return {base, base + size_};
}

}  // namespace llama4
