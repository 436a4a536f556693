// Bindings of the checkpoint loader (llama4/safetensors.h, llama4/checkpoint.h):
//   _C.SafetensorsFile(path, writable) / _C.Checkpoint(path, writable): headers and zero-copy tensors
//   (get() -> DLPackTensor sharing the file mapping; llama4_native.safetensors_io wraps them for torch);
//   _C.fp8_plan(config, quantization, activation_scale_ub, fp8_skip_layers, where) -> Fp8Plan | None;
//   _C.text_weight_stream / vision_weight_stream -> an iterator of (engine name, DLPackTensor);
//   _C.load_checkpoint(path, ...) -> LoadedCheckpoint (config, generation config, FP8 plan, weights as
//   {name: DLPackTensor}, which _C.Engine / _C.VisionModel accept as they are).
// The GIL is released while data is read and converted; a progress callable is called with it held.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/checkpoint.h"
#include "llama4/error.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

DType load_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  throw ValueError("dtype must be one of ['float32', 'bfloat16'], got '" + s + "'");
}

// A Python callable(done, total) as a LoadProgress called from C++ without the GIL. The last copy
// of the function may die without the GIL too (a load that throws while the GIL is released), so
// the holder takes the GIL to drop its reference.
LoadProgress progress_fn(const py::object& progress) {
  if (progress.is_none()) return {};
  std::shared_ptr<py::object> holder(new py::object(progress), [](py::object* o) {
    py::gil_scoped_acquire gil;
    delete o;
  });
  return [holder](uint64_t done, uint64_t total) {
    py::gil_scoped_acquire gil;
    (*holder)(done, total);
  };
}

py::dict weight_dict(const WeightSet& w) {
  py::dict d;
  for (const auto& [name, t] : w.tensors) d[py::str(name)] = to_python(t);
  return d;
}

Fp8Request fp8_request(const py::object& quantization, const py::object& ub, const std::vector<int64_t>& skip,
                       int64_t int4_group_size = 0) {
  Fp8Request r;
  r.int4_group_size = int4_group_size;
  if (!quantization.is_none()) r.quantization = py::str(quantization).cast<std::string>();
  if (!ub.is_none()) r.activation_scale_ub = ub.cast<double>();
  r.skip_layers = skip;
  return r;
}

// An iterator over a WeightStream.
struct PyWeightStream {
  WeightStream stream;
  py::tuple next() {
    std::string name;
    Tensor t;
    bool more;
    {
      py::gil_scoped_release nogil;
      more = stream.next(name, t);
    }
    if (!more) throw py::stop_iteration();
    return py::make_tuple(name, to_python(std::move(t)));
  }
};

std::shared_ptr<SafetensorsFile> shared_file(const std::shared_ptr<Checkpoint>& c, const std::string& name) {
  const SafetensorsFile* f = &c->file_of(name);
  for (const auto& p : c->files())
    if (p.get() == f) return p;
  throw Error("checkpoint file table is inconsistent");
}

void bind_files(py::module_& m) {
  py::class_<TensorInfo>(m, "TensorInfo", "Where one tensor lives: [start, end) are absolute byte offsets in file")
      .def_readonly("name", &TensorInfo::name)
      .def_readonly("dtype", &TensorInfo::dtype)
      .def_property_readonly("shape", [](const TensorInfo& i) { return py::tuple(py::cast(i.shape)); })
      .def_readonly("start", &TensorInfo::start)
      .def_readonly("end", &TensorInfo::end)
      .def_readonly("file", &TensorInfo::file)
      .def_property_readonly("nbytes", &TensorInfo::nbytes)
      .def_property_readonly("numel", &TensorInfo::numel);
  py::class_<SafetensorsFile, std::shared_ptr<SafetensorsFile>>(m, "SafetensorsFile")
      .def(py::init<const std::string&, bool>(), py::arg("path"), py::arg("writable") = false)
      .def_property_readonly("path", &SafetensorsFile::path)
      .def_property_readonly("metadata", &SafetensorsFile::metadata)
      .def("keys", &SafetensorsFile::names)
      .def("__contains__", &SafetensorsFile::contains)
      .def("info", &SafetensorsFile::info, py::arg("name"), py::return_value_policy::copy)
      .def("get", [](const SafetensorsFile& f, const std::string& name) { return to_python(f.get(name)); })
      .def("address_range", &SafetensorsFile::address_range);
  py::class_<Checkpoint, std::shared_ptr<Checkpoint>>(m, "Checkpoint")
      .def(py::init<const std::string&, bool>(), py::arg("path"), py::arg("writable") = false)
      .def_property_readonly("path", &Checkpoint::path)
      .def_property_readonly("files", &Checkpoint::files)
      .def("keys", &Checkpoint::names)
      .def("__contains__", &Checkpoint::contains)
      .def("__len__", &Checkpoint::size)
      .def("file_of", &shared_file, py::arg("name"))
      .def("info", &Checkpoint::info, py::arg("name"), py::return_value_policy::copy)
      .def("get", [](const Checkpoint& c, const std::string& name) { return to_python(c.get(name)); })
      .def("has_vision_weights", [](const Checkpoint& c) { return has_vision_weights(c); })
      .def(
          "check_finite",
          [](const Checkpoint& c) {
            py::gil_scoped_release nogil;
            check_finite(c);
          },
          "CheckpointError naming the first tensor (in name order) that holds NaN or infinity");
}

void bind_loader(py::module_& m) {
  py::class_<Fp8Plan>(m, "Fp8Plan", "How a load gets quantized experts, FP8 or INT4 (stored in the checkpoint, or "
                                    "quantized at load)")
      .def_readonly("stored", &Fp8Plan::stored)
      .def_readonly("method", &Fp8Plan::method)
      .def_readonly("int4_group_size", &Fp8Plan::int4_group_size)
      .def_readonly("activation_scale_ub", &Fp8Plan::activation_scale_ub)
      .def_property_readonly("ignore", [](const Fp8Plan& p) { return py::tuple(py::cast(p.ignore)); })
      .def_property_readonly("skip_layers", [](const Fp8Plan& p) { return py::frozenset(py::cast(p.skip_layers)); })
      .def("ignores", &Fp8Plan::ignores, py::arg("module"), py::arg("root"));
  m.def(
      "fp8_plan",
      [](const ModelConfig& c, const py::object& quantization, const py::object& ub, const std::vector<int64_t>& skip,
         const std::string& where, int64_t int4_group_size) {
        return make_fp8_plan(c, fp8_request(quantization, ub, skip, int4_group_size), where);
      },
      py::arg("config"), py::arg("quantization") = py::none(), py::arg("activation_scale_ub") = py::none(),
      py::arg("fp8_skip_layers") = std::vector<int64_t>{}, py::arg("where") = "", py::arg("int4_group_size") = 0);

  py::class_<PyWeightStream>(m, "WeightStream", "(engine name, tensor) pairs, converted one at a time")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &PyWeightStream::next)
      .def_property_readonly("total_bytes", [](const PyWeightStream& s) { return s.stream.total_bytes(); })
      .def("__len__", [](const PyWeightStream& s) { return s.stream.count(); });
  m.def(
      "text_weight_stream",
      [](std::shared_ptr<Checkpoint> c, const TextConfig& config, const std::string& dtype,
         const std::optional<Fp8Plan>& fp8, const py::object& progress) {
        const DType dt = load_dtype(dtype);
        LoadProgress fn = progress_fn(progress);
        py::gil_scoped_release nogil;
        return PyWeightStream{text_weight_stream(std::move(c), config, dt, fp8, std::move(fn))};
      },
      py::arg("checkpoint"), py::arg("config"), py::arg("dtype") = "bfloat16", py::arg("fp8") = py::none(),
      py::arg("progress") = py::none());
  m.def(
      "vision_weight_stream",
      [](std::shared_ptr<Checkpoint> c, const VisionConfig& config, const std::string& dtype) {
        const DType dt = load_dtype(dtype);
        py::gil_scoped_release nogil;
        return PyWeightStream{vision_weight_stream(std::move(c), config, dt)};
      },
      py::arg("checkpoint"), py::arg("config"), py::arg("dtype") = "bfloat16");

  py::class_<LoadedCheckpoint>(m, "LoadedCheckpoint", "A loaded checkpoint: config, generation config, weights")
      .def_readonly("path", &LoadedCheckpoint::path)
      .def_readonly("config", &LoadedCheckpoint::config)
      .def_readonly("generation_config", &LoadedCheckpoint::generation)
      .def_readonly("fp8", &LoadedCheckpoint::fp8)
      .def_property_readonly("checkpoint",
                             [](const LoadedCheckpoint& l) { return std::const_pointer_cast<Checkpoint>(l.checkpoint); })
      .def_property_readonly("text_weights", [](const LoadedCheckpoint& l) { return weight_dict(l.text_weights); })
      .def_property_readonly("vision_weights", [](const LoadedCheckpoint& l) { return weight_dict(l.vision_weights); })
      .def_property_readonly("fp8_layers", [](const LoadedCheckpoint& l) { return l.text_weights.fp8_layers(); })
      .def_property_readonly("int4_layers", [](const LoadedCheckpoint& l) { return l.text_weights.int4_layers(); })
      .def_property_readonly("int4_mlp_layers",
                             [](const LoadedCheckpoint& l) { return l.text_weights.int4_mlp_layers(); });
  m.def(
      "load_checkpoint",
      [](const std::string& path, const std::string& dtype, const py::object& quantization, const py::object& ub,
         const std::vector<int64_t>& skip, bool vision, const py::object& progress, int rank, int world_size,
         bool check_weights, int64_t int4_group_size) {
        LoadOptions o;
        o.rank = rank;
        o.world_size = world_size;
        o.dtype = load_dtype(dtype);
        o.fp8 = fp8_request(quantization, ub, skip, int4_group_size);
        o.vision = vision;
        o.check_weights = check_weights;
        o.progress = progress_fn(progress);
        py::gil_scoped_release nogil;
        return load_checkpoint(path, o);
      },
      py::arg("path"), py::arg("dtype") = "bfloat16", py::arg("quantization") = py::none(),
      py::arg("activation_scale_ub") = py::none(), py::arg("fp8_skip_layers") = std::vector<int64_t>{},
      py::arg("vision") = false, py::arg("progress") = py::none(), py::arg("rank") = 0, py::arg("world_size") = 1,
      py::arg("check_weights") = false, py::arg("int4_group_size") = 0);
}

}  // namespace

void register_checkpoint(py::module_& m) {
  bind_files(m);
  bind_loader(m);
}

}  // namespace llama4::python
