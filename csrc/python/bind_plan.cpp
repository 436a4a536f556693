// Bindings of the memory planner's shared facts (llama4/memory_plan.h, llama4/kv_cache.h):
//   _C.text_weight_specs(config, dtype, fp8_moe_layers=(), int4_group_size=0, int4_mlp_layers=())
//                                                          -> [(name, shape, dtype, nbytes)]; the
//                                                             quantized layers are INT4 with that group
//                                                             size when > 0 (config.moe_int4_group_size),
//                                                             int4_mlp_layers' shared expert / MLP too
//   _C.vision_weight_specs(vision_config, dtype)           -> [(name, shape, dtype, nbytes)]
//   _C.fp8_expert_layers(text_config, fp8_plan, root)      -> [layer]
//   _C.int4_mlp_layers(text_config, fp8_plan, root)        -> [layer]
//   _C.kv_cache_layout(..., budget_bytes, max_seqs, ...)   -> dict: the pools from_budget sizes
//   _C.kv_page_bytes(...)                                  -> (chunked, global) bytes of one page
//   _C.text_shard_specs(config, dtype, fp8, rank, size, int4_group_size=0, int4_mlp_layers=())
//                                                          -> text_weight_specs of one tensor-parallel
//                                                             rank's share (llama4/shard.h), and its KV heads
// llama4_native/plan.py builds its answers from these, so it counts what the engine allocates.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/error.h"
#include "llama4/kv_cache.h"
#include "llama4/memory_plan.h"
#include "llama4/shard.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

DType weight_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  throw ValueError("dtype must be 'float32' or 'bfloat16', got '" + s + "'");
}

DType kv_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  if (s == "float8_e4m3fn") return DType::F8E4M3;
  throw ValueError("kv cache dtype must be 'float32', 'bfloat16', 'float16' or 'float8_e4m3fn', got '" + s + "'");
}

py::list spec_list(const std::vector<WeightSpec>& specs) {
  py::list out;
  for (const WeightSpec& w : specs)
    out.append(py::make_tuple(w.name, py::tuple(py::cast(std::vector<int64_t>(w.shape.begin(), w.shape.end()))),
                              dtype_name(w.dtype), w.nbytes()));
  return out;
}

KVCacheConfig page_config(int num_layers, std::vector<int> layer_chunked, int num_kv_heads, int head_dim,
                          const std::string& dtype, int page_size, int64_t chunk_size) {
  KVCacheConfig c;
  c.num_layers = num_layers;
  c.layer_chunked = std::move(layer_chunked);
  c.num_kv_heads = num_kv_heads;
  c.head_dim = head_dim;
  c.dtype = kv_dtype(dtype);
  c.page_size = page_size;
  c.chunk_size = chunk_size;
  c.validate();
  return c;
}

}  // namespace

void register_plan(py::module_& m) {
  m.def(
      "text_weight_specs",
      [](const py::object& config, const std::string& dtype, const std::vector<int>& fp8, int64_t int4_group_size,
         const std::vector<int>& int4_mlp) {
        TextConfig c = text_config_from_py(config);
        if (int4_group_size > 0) c.moe_int4_group_size = int4_group_size;
        return spec_list(text_weight_specs(c, weight_dtype(dtype), fp8, int4_mlp));
      },
      py::arg("config"), py::arg("dtype") = "bfloat16", py::arg("fp8_moe_layers") = std::vector<int>{},
      py::arg("int4_group_size") = 0, py::arg("int4_mlp_layers") = std::vector<int>{});
  m.def(
      "vision_weight_specs",
      [](const VisionConfig& config, const std::string& dtype) {
        return spec_list(vision_weight_specs(config, weight_dtype(dtype)));
      },
      py::arg("config"), py::arg("dtype") = "bfloat16");
  m.def(
      "text_shard_specs",
      [](const py::object& config, const std::string& dtype, const std::vector<int>& fp8, int rank, int size,
         int64_t int4_group_size, const std::vector<int>& int4_mlp) {
        TextConfig c = text_config_from_py(config);
        if (int4_group_size > 0) c.moe_int4_group_size = int4_group_size;
        const TextShard shard = TextShard::of(c, rank, size);
        std::vector<WeightSpec> specs = text_weight_specs(c, weight_dtype(dtype), fp8, int4_mlp);
        for (WeightSpec& w : specs) w.shape = shard_weight_shape(w.name, w.shape, c, shard);
        return py::make_tuple(spec_list(specs), shard.kv_count);
      },
      py::arg("config"), py::arg("dtype"), py::arg("fp8_moe_layers"), py::arg("rank"), py::arg("size"),
      py::arg("int4_group_size") = 0, py::arg("int4_mlp_layers") = std::vector<int>{});
  m.def("fp8_expert_layers", &fp8_expert_layers, py::arg("config"), py::arg("plan"), py::arg("root"));
  m.def("int4_mlp_layers", &int4_mlp_layers, py::arg("config"), py::arg("plan"), py::arg("root"));
  m.def(
      "kv_page_bytes",
      [](int num_layers, std::vector<int> layer_chunked, int num_kv_heads, int head_dim, const std::string& dtype,
         int page_size, int64_t chunk_size) {
        const KVCacheConfig c =
            page_config(num_layers, std::move(layer_chunked), num_kv_heads, head_dim, dtype, page_size, chunk_size);
        return py::make_tuple(c.page_bytes(0), c.page_bytes(1));
      },
      py::kw_only(), py::arg("num_layers"), py::arg("layer_chunked"), py::arg("num_kv_heads"), py::arg("head_dim"),
      py::arg("dtype"), py::arg("page_size"), py::arg("chunk_size"));
  m.def(
      "kv_cache_layout",
      [](int num_layers, std::vector<int> layer_chunked, int num_kv_heads, int head_dim, const std::string& dtype,
         int page_size, int64_t chunk_size, int64_t budget_bytes, int64_t max_seqs, int64_t max_step_tokens) {
        const KVCacheConfig c = KVCacheConfig::from_budget(num_layers, std::move(layer_chunked), num_kv_heads,
                                                           head_dim, kv_dtype(dtype), Device::cpu(), page_size,
                                                           chunk_size, budget_bytes, max_seqs, max_step_tokens);
        py::dict d;
        d["num_pages_chunked"] = c.num_layers_in(0) > 0 ? c.num_pages_chunked : 0;
        d["num_pages_global"] = c.num_layers_in(1) > 0 ? c.num_pages_global : 0;
        d["page_bytes"] = py::make_tuple(c.page_bytes(0), c.page_bytes(1));
        d["pool_bytes"] = c.pool_bytes();
        return d;
      },
      py::kw_only(), py::arg("num_layers"), py::arg("layer_chunked"), py::arg("num_kv_heads"), py::arg("head_dim"),
      py::arg("dtype"), py::arg("page_size"), py::arg("chunk_size"), py::arg("budget_bytes"), py::arg("max_seqs"),
      py::arg("max_step_tokens") = 0);
}

}  // namespace llama4::python
