// A checkpoint seen as one name -> tensor mapping: a single .safetensors file, or an index
// (model.safetensors.index.json) and its shards; folder resolution as Hugging Face lays them out.
#include <dirent.h>

#include <algorithm>
#include <map>

#include "llama4/error.h"
#include "llama4/safetensors.h"
#include "model/checkpoint/json_util.h"

namespace llama4 {

namespace {

using checkpoint::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::string& folder, const std::string& name) {
  return folder.empty() ? name : folder + (folder.back() == '/' ? "" : "/") + name;
}

std::vector<std::string> list_folder(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(path.c_str())) {
    while (const dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// {is_index, file} for a folder, a .safetensors file or an index .json.
std::pair<bool, std::string> resolve(const std::string& path) {
  if (checkpoint::is_regular_file(path)) return {ends_with(path, ".json"), path};
  if (!checkpoint::is_directory(path)) throw CheckpointError(path + ": no such checkpoint file or folder");
  if (checkpoint::is_regular_file(join(path, kIndexName))) return {true, join(path, kIndexName)};
  if (checkpoint::is_regular_file(join(path, kSingleName))) return {false, join(path, kSingleName)};
  const std::vector<std::string> names = list_folder(path);
  for (const auto& [is_index, suffix] : {std::pair{true, ".safetensors.index.json"}, {false, ".safetensors"}}) {
    json found = json::array();
    for (const std::string& n : names)
      if (ends_with(n, suffix)) found.push_back(n);
    if (found.size() == 1) return {is_index, join(path, found[0].get<std::string>())};
    if (!found.empty())
      throw CheckpointError(path + ": several " + suffix + " files and no " + kIndexName + ": " + checkpoint::py_repr(found));
  }
  throw CheckpointError(path + ": no " + std::string(kSingleName) + ", " + kIndexName + " or other .safetensors file");
}

json read_index(const std::string& index_path) {
  std::string text, error;
  if (!checkpoint::read_text_file(index_path, text, error))
    throw CheckpointError(index_path + ": cannot read (" + error + ")");
  json index;
  if (!checkpoint::parse_json(text, index, error, true)) throw CheckpointError(index_path + ": invalid JSON (" + error + ")");
  const json* wmap = index.is_object() && index.contains("weight_map") ? &index.at("weight_map") : nullptr;
  bool ok = wmap && wmap->is_object();
  for (auto it = ok ? wmap->begin() : json::const_iterator(); ok && it != wmap->end(); ++it) ok = it->is_string();
  if (!ok)
    throw CheckpointError(index_path + ": needs a \"weight_map\" object mapping tensor names to shard file names");
  return *wmap;
}

}  // namespace

Checkpoint::Checkpoint(const std::string& path, bool writable) : path_(path) {
  const auto [is_index, target] = resolve(path);
  if (!is_index) {
    files_.push_back(std::make_shared<SafetensorsFile>(target, writable));
    for (const std::string& n : files_[0]->names()) where_[n] = files_[0].get();
    return;
  }
  const json wmap = read_index(target);
  const std::string folder = target.find('/') == std::string::npos ? "" : target.substr(0, target.rfind('/'));
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& [name, value] : wmap.items()) {
    const std::string shard = value.get<std::string>();
    auto it = shards.find(shard);
    if (it == shards.end()) {
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos)
        throw CheckpointError(target + ": shard name '" + shard + "' (tensor '" + name +
                              "') must be a plain file name in the checkpoint folder");
      const std::string shard_path = join(folder, shard);
      if (!checkpoint::is_regular_file(shard_path))
        throw CheckpointError(target + ": shard '" + shard + "' (holding tensor '" + name + "') is missing from " +
                              (folder.empty() ? "." : folder));
      it = shards.emplace(shard, std::make_shared<SafetensorsFile>(shard_path, writable)).first;
      files_.push_back(it->second);
    }
    if (!it->second->contains(name))
      throw CheckpointError(target + ": tensor '" + name + "' is listed in shard '" + shard + "' but " +
                            it->second->path() + " does not contain it");
    where_[name] = it->second.get();
  }
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, file] : where_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) throw CheckpointError(path_ + ": no tensor '" + name + "'");
  return *it->second;
}

}  // namespace llama4
