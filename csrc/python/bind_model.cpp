// Bindings of the serving engine: _C.Engine(config: TextConfig | dict, dtype: str, weights: dict, options: dict).
// The engine keeps views of the weight tensors; the binding holds the Python objects so their
// memory (often a memory-mapped checkpoint) outlives the engine.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/communicator.h"
#include "llama4/engine.h"
#include "llama4/error.h"
#include "model/decode_graphs.h"
#include "python/bindings.h"
#include "python/py_engine.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

DType model_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  throw ValueError("dtype must be 'float32' or 'bfloat16', got '" + s + "'");
}

std::unique_ptr<PyEngine> make_engine(const py::object& config, const std::string& dtype,
                                      const py::dict& weights, const py::dict& options) {
  auto out = std::make_unique<PyEngine>();
  out->weight_objects = weights;
  WeightMap views;
  std::vector<BorrowedView> borrowed;  // capsules stay referenced by weight_objects' owners
  for (const auto& [key, value] : weights) {
    const std::string name = key.cast<std::string>();
    borrowed.push_back(as_view(value, name.c_str()));
    views.emplace(name, borrowed.back().view);
  }
  EngineOptions opt;
  if (options.contains("page_size")) opt.page_size = options["page_size"].cast<int>();
  if (options.contains("kv_cache_bytes")) opt.kv_cache_bytes = options["kv_cache_bytes"].cast<int64_t>();
  if (options.contains("max_sequences")) opt.max_sequences = options["max_sequences"].cast<int>();
  if (options.contains("max_step_tokens")) opt.max_step_tokens = options["max_step_tokens"].cast<int64_t>();
  if (options.contains("image_token_id")) opt.image_token_id = options["image_token_id"].cast<int64_t>();
  if (options.contains("kv_cache_dtype")) {
    const std::string kv = options["kv_cache_dtype"].cast<std::string>();
    if (kv == "float8_e4m3fn") opt.kv_cache_dtype = DType::F8E4M3;
    else if (kv == "bfloat16") opt.kv_cache_dtype = DType::BF16;
    else if (kv == "float32") opt.kv_cache_dtype = DType::F32;
    else if (kv != "auto")
      throw ValueError("kv_cache_dtype must be 'auto', 'bfloat16', 'float32' or 'float8_e4m3fn', got '" + kv + "'");
  }
  if (options.contains("enforce_eager")) {
    const py::object v = options["enforce_eager"];
    if (!py::isinstance<py::bool_>(v))
      throw TypeError("enforce_eager must be a bool, got " + std::string(py::str(py::type::of(v).attr("__name__"))));
    opt.enforce_eager = v.cast<bool>();
  }
  if (options.contains("max_decode_graphs")) opt.max_decode_graphs = options["max_decode_graphs"].cast<int>();
  if (options.contains("decode_layouts_on_cpu")) opt.decode_layouts_on_cpu = options["decode_layouts_on_cpu"].cast<bool>();
  if (options.contains("comm") && !options["comm"].is_none())
    opt.comm = options["comm"].cast<std::shared_ptr<Communicator>>();
  TextConfig cfg = text_config_from_py(config);
  const DType dt = model_dtype(dtype);
  py::gil_scoped_release nogil;
  out->engine = std::make_unique<Engine>(std::move(cfg), dt, std::move(views), opt);
  return out;
}

// requests: list of (seq, tokens, all_logits) or (seq, tokens, all_logits, image_features or None)
py::object step(PyEngine& e, const py::list& requests) {
  std::vector<StepRequest> reqs;
  std::vector<BorrowedView> features;  // keeps the feature tensors alive during the step
  reqs.reserve(requests.size());
  for (const py::handle& item : requests) {
    const auto t = item.cast<py::sequence>();
    LLAMA4_CHECK_ARG(t.size() == 3 || t.size() == 4, "a step request is (seq, tokens, all_logits"
                     "[, image_features]), got ", t.size(), " items");
    StepRequest r{t[0].cast<int64_t>(), t[1].cast<std::vector<int32_t>>(),
                  t[2].cast<bool>() ? LogitRows::All : LogitRows::Last};
    if (t.size() == 4 && !t[3].is_none()) {
      // Asked for on the engine's stream, so the producer's pending writes come first.
      features.push_back(as_view(t[3], "image_features", &e.engine->context()));
      r.image_features = features.back().view;
    }
    reqs.push_back(std::move(r));
  }
  Tensor logits;
  {
    py::gil_scoped_release nogil;
    logits = e.engine->step(reqs);
  }
  return to_python(logits, e.engine->context());  // consumers wait for the engine's stream
}

}  // namespace

void register_model(py::module_& m) {
  m.def("decode_buckets", &detail::decode_buckets, py::arg("max_batch"),
        "Batch sizes of the CUDA decode layouts: 1, 2, 4, multiples of 8, and max_batch (none above it)");
  m.def("decode_bucket", &detail::decode_bucket, py::arg("batch"), py::arg("max_batch"),
        "The layout rows of a decode step of `batch` sequences (0: outside [1, max_batch], no layout)");
  m.def("decode_table_width", &detail::decode_table_width, py::arg("pages"),
        "Page-table columns of a decode layout: the smallest power of two >= pages, at least 4");
  py::class_<PyEngine>(m, "Engine", "The C++ serving engine: text decoder + paged KV cache")
      .def(py::init(&make_engine), py::arg("config"), py::arg("dtype"), py::arg("weights"),
           py::arg("options") = py::dict())
      .def("add_sequence", [](PyEngine& e) { return e.engine->add_sequence(); })
      .def("free_sequence", [](PyEngine& e, int64_t s) { e.engine->free_sequence(s); }, py::arg("seq"))
      .def("length", [](PyEngine& e, int64_t s) { return e.engine->length(s); }, py::arg("seq"))
      .def("step", &step, py::arg("requests"),
           "Run [(seq, tokens, all_logits[, image_features]), ...]; returns float32 logits rows")
      .def("follow", [](PyEngine& e) {
        py::gil_scoped_release nogil;
        e.engine->follow();
      }, "Ranks 1..N-1: run rank 0's forward passes until its engine goes away (RankError when a rank fails)")
      .def("release_followers", [](PyEngine& e) {
        py::gil_scoped_release nogil;
        e.engine->release_followers();
      }, "Rank 0: tells the other ranks to stop now (later steps raise RankError)")
      .def_property_readonly("enforce_eager", [](PyEngine& e) { return e.engine->options().enforce_eager; })
      .def_property_readonly("uses_cuda_graphs", [](PyEngine& e) { return e.engine->uses_cuda_graphs(); },
                             "Whether decode steps replay CUDA graphs (CUDA, one rank, not enforce_eager)")
      .def("decode_graph_stats", [](PyEngine& e) {
        const DecodeGraphStats s = e.engine->decode_graph_stats();
        py::dict d;
        d["graphs"] = s.graphs;
        d["captures"] = s.captures;
        d["replays"] = s.replays;
        d["eager_steps"] = s.eager_steps;
        d["evictions"] = s.evictions;
        d["graph_memory_bytes"] = s.graph_memory_bytes;
        d["error"] = s.error;
        return d;
      }, "What the decode layouts did: graphs, captures, replays, eager_steps, evictions, graph_memory_bytes, error")
      .def_property_readonly("rank", [](PyEngine& e) { return e.engine->rank(); })
      .def_property_readonly("world_size", [](PyEngine& e) { return e.engine->world_size(); })
      .def("free_pages", [](PyEngine& e, int g) { return e.engine->cache().free_pages(g); }, py::arg("group"))
      .def("total_pages", [](PyEngine& e, int g) { return e.engine->cache().total_pages(g); }, py::arg("group"))
      // What the KV cache allocated, counted from its tensors (the planner's test compares).
      .def("kv_cache_storage_bytes", [](PyEngine& e) { return e.engine->cache().storage_bytes(); })
      .def("pages_of", [](PyEngine& e, int64_t s, int g) { return e.engine->cache().pages_of(s, g); },
           py::arg("seq"), py::arg("group"))
      // One layer's cache storage (zero-copy views sharing the storage): (k, v, k_scale, v_scale),
      // the scales None unless FP8.
      .def(
          "kv_cache_layer",
          [](PyEngine& e, int layer) {
            const KVCache& c = e.engine->cache();
            const Context ctx = e.engine->context();
            const bool fp8 = c.config().dtype == DType::F8E4M3;
            return py::make_tuple(to_python(c.k_tensor(layer), ctx), to_python(c.v_tensor(layer), ctx),
                                  fp8 ? to_python(c.k_scale_tensor(layer), ctx) : py::object(py::none()),
                                  fp8 ? to_python(c.v_scale_tensor(layer), ctx) : py::object(py::none()));
          },
          py::arg("layer"));
}

}  // namespace llama4::python
