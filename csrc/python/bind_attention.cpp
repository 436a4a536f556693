// Bindings of the paged KV cache and its ops:
//   _C.cache_write(k_cache, v_cache, k, v, slots)              in place, returns None
//   _C.paged_attention(q, k_cache, v_cache, page_table, query_seq, query_pos, scale, ...) -> out
//   _C.KVCache(num_layers=..., layer_chunked=..., ...)         page pools + per-step plans;
//       k(layer)/v(layer) are zero-copy DLPackTensor views of the cache storage.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "llama4/error.h"
#include "llama4/kv_cache.h"
#include "llama4/ops.h"
#include "ops/attention_plan.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

DType parse_cache_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  if (s == "float8_e4m3fn") return DType::F8E4M3;
  throw ValueError("KVCache: dtype must be 'float32', 'bfloat16', 'float16' or 'float8_e4m3fn', got '" + s + "'");
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.find_first_not_of("0123456789", 5) == std::string::npos)
    return Device::cuda(std::stoi(s.substr(5)));
  throw ValueError("KVCache: device must be 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
}

// FP8 caches' scales (None for other caches): borrowed views that live as long as the call.
struct ScaleViews {
  BorrowedView k, v;
  ops::KVScales get() const { return {k.view, v.view}; }
};
ScaleViews scale_views(const CallContext& call, const py::object& k_scale, const py::object& v_scale) {
  return {call.optional(k_scale, "k_scale"), call.optional(v_scale, "v_scale")};
}

void cache_write(const py::object& k_cache, const py::object& v_cache, const py::object& k,
                 const py::object& v, const py::object& slots, const py::object& k_scale,
                 const py::object& v_scale) {
  const CallContext call(k_cache, "k_cache");
  const BorrowedView kc = call.view(k_cache, "k_cache"), vc = call.view(v_cache, "v_cache"),
                     kv = call.view(k, "k"), vv = call.view(v, "v"), sv = call.view(slots, "slots");
  const ScaleViews sc = scale_views(call, k_scale, v_scale);
  py::gil_scoped_release nogil;
  ops::cache_write(call.ctx, kc, vc, kv, vv, sv, sc.get());
}

// "split_kv" or "prefill": the CUDA kernel paged_attention would run for these shapes.
std::string attention_kernel_choice(int64_t T, int64_t S, int64_t H, int64_t KV, int64_t d, int64_t page_size,
                                    int64_t table_width, int64_t chunk, const std::string& q_dtype,
                                    const std::string& cache_dtype, int kv_splits, bool aligned, int kernel) {
  ops::AttentionShape s;
  s.T = T, s.S = S, s.H = H, s.KV = KV, s.d = d, s.page_size = page_size, s.table_width = table_width;
  s.chunk = chunk, s.q_dtype = parse_cache_dtype(q_dtype), s.cache_dtype = parse_cache_dtype(cache_dtype);
  s.kv_splits = kv_splits, s.aligned = aligned;
  const ops::AttentionKernel k = ops::choose_attention_kernel(s, static_cast<ops::AttentionKernel>(kernel));
  return k == ops::AttentionKernel::kPrefillTiles ? "prefill" : "split_kv";
}

std::vector<int32_t> prefill_tiles_list(const std::vector<int32_t>& query_seq, const std::vector<int32_t>& query_pos,
                                        int64_t chunk, int64_t tile_tokens) {
  LLAMA4_CHECK_ARG(query_seq.size() == query_pos.size(), "_prefill_tiles: query_seq and query_pos differ in length");
  return ops::prefill_tiles(query_seq.data(), query_pos.data(), int64_t(query_seq.size()), chunk, tile_tokens);
}

py::object paged_attention(const py::object& q, const py::object& k_cache, const py::object& v_cache,
                           const py::object& page_table, const py::object& query_seq,
                           const py::object& query_pos, float scale, int64_t chunk_size,
                           float attn_scale, float floor_scale, int kv_splits, const py::object& k_scale,
                           const py::object& v_scale, int kernel) {
  const CallContext call(q, "q");
  const BorrowedView qv = call.view(q, "q"), kc = call.view(k_cache, "k_cache"),
                     vc = call.view(v_cache, "v_cache"),
                     pt = call.view(page_table, "page_table"), qs = call.view(query_seq, "query_seq"),
                     qp = call.view(query_pos, "query_pos");
  const ScaleViews sc = scale_views(call, k_scale, v_scale);
  Tensor out = call.empty(qv.view.sizes(), qv.view.dtype);
  ops::AttentionParams prm;
  prm.scale = scale;
  prm.chunk_size = chunk_size;
  prm.attn_scale = attn_scale;
  prm.floor_scale = floor_scale;
  prm.kv_splits = kv_splits;
  prm.kernel = static_cast<ops::AttentionKernel>(kernel);
  {
    py::gil_scoped_release nogil;
    ops::paged_attention(call.ctx, out, qv, kc, vc, pt, qs, qp, prm, sc.get());
  }
  return call.out(out);
}

py::dict config_dict(const KVCacheConfig& c) {
  py::dict d;
  d["num_layers"] = c.num_layers;
  d["layer_chunked"] = c.layer_chunked;
  d["num_kv_heads"] = c.num_kv_heads;
  d["head_dim"] = c.head_dim;
  d["dtype"] = dtype_name(c.dtype);
  d["device"] = c.device.str();
  d["page_size"] = c.page_size;
  d["chunk_size"] = c.chunk_size;
  d["num_pages_chunked"] = c.num_pages_chunked;
  d["num_pages_global"] = c.num_pages_global;
  return d;
}

py::dict plan_dict(const KVCache& cache, const std::vector<int64_t>& seqs, const std::vector<int64_t>& n_new) {
  const KVCache::StepPlan p = cache.plan(seqs, n_new);
  py::dict d;
  d["page_table"] = py::make_tuple(to_python(p.page_table[0]), to_python(p.page_table[1]));
  d["slots"] = py::make_tuple(to_python(p.slots[0]), to_python(p.slots[1]));
  d["query_seq"] = to_python(p.query_seq);
  d["query_pos"] = to_python(p.query_pos);
  return d;
}

}  // namespace

void register_attention(py::module_& m) {
  m.def("cache_write", &cache_write, py::arg("k_cache"), py::arg("v_cache"), py::arg("k"), py::arg("v"),
        py::arg("slots"), py::arg("k_scale") = py::none(), py::arg("v_scale") = py::none());
  m.def("paged_attention", &paged_attention, py::arg("q"), py::arg("k_cache"), py::arg("v_cache"),
        py::arg("page_table"), py::arg("query_seq"), py::arg("query_pos"), py::arg("scale"),
        py::arg("chunk_size") = 0, py::arg("attn_scale") = 0.0f, py::arg("floor_scale") = 8192.0f,
        py::arg("kv_splits") = 0, py::arg("k_scale") = py::none(), py::arg("v_scale") = py::none(),
        py::arg("kernel") = 0);
  // The host planning of CUDA paged attention (ops/attention_plan.h), for tests.
  m.def("_attention_kernel_choice", &attention_kernel_choice, py::arg("T"), py::arg("S"), py::arg("H"),
        py::arg("KV"), py::arg("d"), py::arg("page_size"), py::arg("table_width"), py::arg("chunk"),
        py::arg("q_dtype"), py::arg("cache_dtype"), py::arg("kv_splits") = 0, py::arg("aligned") = true,
        py::arg("kernel") = 0);
  m.def("_prefill_tiles", &prefill_tiles_list, py::arg("query_seq"), py::arg("query_pos"), py::arg("chunk"),
        py::arg("tile_tokens"));

  py::class_<KVCache, std::shared_ptr<KVCache>>(m, "KVCache",
                                                "Paged KV cache: a chunked-layer and a global-layer page pool.")
      .def(py::init([](int num_layers, std::vector<int> layer_chunked, int num_kv_heads, int head_dim,
                       const std::string& dtype, const std::string& device, int page_size, int64_t chunk_size,
                       int64_t num_pages_chunked, int64_t num_pages_global) {
             KVCacheConfig c;
             c.num_layers = num_layers;
             c.layer_chunked = std::move(layer_chunked);
             c.num_kv_heads = num_kv_heads;
             c.head_dim = head_dim;
             c.dtype = parse_cache_dtype(dtype);
             c.device = parse_device(device);
             c.page_size = page_size;
             c.chunk_size = chunk_size;
             c.num_pages_chunked = num_pages_chunked;
             c.num_pages_global = num_pages_global;
             return std::make_shared<KVCache>(c);
           }),
           py::kw_only(), py::arg("num_layers"), py::arg("layer_chunked"), py::arg("num_kv_heads"),
           py::arg("head_dim"), py::arg("dtype") = "bfloat16", py::arg("device") = "cpu",
           py::arg("page_size") = 16, py::arg("chunk_size"), py::arg("num_pages_chunked"),
           py::arg("num_pages_global"))
      .def_static(
          "from_budget",
          [](int num_layers, std::vector<int> layer_chunked, int num_kv_heads, int head_dim,
             const std::string& dtype, const std::string& device, int page_size, int64_t chunk_size,
             int64_t budget_bytes, int64_t max_seqs, int64_t max_step_tokens) {
            return std::make_shared<KVCache>(KVCacheConfig::from_budget(
                num_layers, std::move(layer_chunked), num_kv_heads, head_dim, parse_cache_dtype(dtype),
                parse_device(device), page_size, chunk_size, budget_bytes, max_seqs, max_step_tokens));
          },
          py::kw_only(), py::arg("num_layers"), py::arg("layer_chunked"), py::arg("num_kv_heads"),
          py::arg("head_dim"), py::arg("dtype") = "bfloat16", py::arg("device") = "cpu",
          py::arg("page_size") = 16, py::arg("chunk_size"), py::arg("budget_bytes"), py::arg("max_seqs"),
          py::arg("max_step_tokens") = 0)
      .def_static("chunked_pages_bound", &KVCacheConfig::chunked_pages_bound, py::arg("page_size"),
                  py::arg("chunk_size"), py::arg("max_step_tokens"))
      .def_property_readonly("config", [](const KVCache& c) { return config_dict(c.config()); })
      .def("add_sequence", &KVCache::add_sequence)
      .def("free_sequence", &KVCache::free_sequence, py::arg("id"))
      .def("length", &KVCache::length, py::arg("id"))
      .def("reserve", &KVCache::reserve, py::arg("seqs"), py::arg("n_new"))
      .def("commit", &KVCache::commit, py::arg("seqs"), py::arg("n_new"))
      .def("plan", &plan_dict, py::arg("seqs"), py::arg("n_new"))
      // Zero-copy views: the exported tensor shares the layer's storage; keep_alive also ties the
      // DLPackTensor to the cache object.
      .def("k", [](const KVCache& c, int layer) { return to_python(c.k_tensor(layer)); }, py::arg("layer"),
           py::keep_alive<0, 1>())
      .def("v", [](const KVCache& c, int layer) { return to_python(c.v_tensor(layer)); }, py::arg("layer"),
           py::keep_alive<0, 1>())
      .def("k_scale", [](const KVCache& c, int layer) { return to_python(c.k_scale_tensor(layer)); },
           py::arg("layer"), py::keep_alive<0, 1>())
      .def("v_scale", [](const KVCache& c, int layer) { return to_python(c.v_scale_tensor(layer)); },
           py::arg("layer"), py::keep_alive<0, 1>())
      .def("storage_bytes", &KVCache::storage_bytes)
      .def("group_of", &KVCache::group_of, py::arg("layer"))
      .def("free_pages", &KVCache::free_pages, py::arg("group"))
      .def("total_pages", &KVCache::total_pages, py::arg("group"))
      .def("pages_of", &KVCache::pages_of, py::arg("seq"), py::arg("group"))
      .def("num_sequences", &KVCache::num_sequences)
      .def("__contains__", &KVCache::contains, py::arg("id"));
}

}  // namespace llama4::python
