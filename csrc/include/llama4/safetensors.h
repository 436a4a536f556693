// The safetensors reader: validated headers, memory-mapped zero-copy tensors, sharded checkpoints.
//
// File format: u64 little-endian N | N bytes of JSON header | data. The header maps each tensor name
// to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section), plus an
// optional "__metadata__" {str: str}. As strict as the reference implementation: the header is at
// most 100 MiB of UTF-8 JSON (nesting bounded, duplicate names rejected), every entry's byte span
// equals its shape x dtype, and the spans tile the data section exactly (no overlap, no hole, no
// trailing bytes). Every problem throws CheckpointError naming the file and the tensor.
//
// Tensors are views of a read-only mapping (pages are read from disk when first touched); each
// Tensor shares ownership of the mapping, so it stays valid after the file object is gone. The
// memory is READ-ONLY: writing through a view crashes, unless the file was opened `writable`
// (private copy-on-write pages; the file never changes).
//
// A checkpoint is a .safetensors file, a folder holding model.safetensors or
// model.safetensors.index.json ({"weight_map": {tensor: shard file}}), or the index itself.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "llama4/tensor.h"

namespace llama4 {

// Where one tensor lives: [start, end) are absolute byte offsets in `file`.
struct TensorInfo {
  std::string name;
  std::string dtype;  // safetensors spelling: F32 F16 BF16 F8_E4M3 I32 I64 U8 BOOL
  Shape shape;
  uint64_t start = 0, end = 0;
  std::string file;
  uint64_t nbytes() const { return end - start; }
  int64_t numel() const;
};

// The engine dtype a safetensors dtype is viewed as (BOOL -> U8, one byte 0/1); throws
// CheckpointError for an unknown spelling.
DType safetensors_dtype(const std::string& name);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path, bool writable = false);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<std::string>& names() const { return names_; }  // sorted
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // CheckpointError if absent
  // A zero-copy view of the tensor (shape and dtype as stored) owning a share of the mapping.
  Tensor get(const std::string& name) const;
  // [first, last) address of the mapping (tests check that views point inside it).
  std::pair<uintptr_t, uintptr_t> address_range() const;

 private:
  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::unordered_map<std::string, TensorInfo> infos_;
  std::vector<std::string> names_;
  std::shared_ptr<void> mapping_;  // the whole file, munmap'ed with the last user
  uint64_t size_ = 0;
};

class Checkpoint {
 public:
  // A .safetensors file, an index .json, or a folder (see above).
  explicit Checkpoint(const std::string& path, bool writable = false);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return where_.size(); }
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const SafetensorsFile& file_of(const std::string& name) const;  // CheckpointError if absent
  const TensorInfo& info(const std::string& name) const { return file_of(name).info(name); }
  Tensor get(const std::string& name) const { return file_of(name).get(name); }
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const SafetensorsFile*> where_;
};

}  // namespace llama4
