// The pybind11 module llama4_native._C: exception mapping and the registration of each part.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cuda/runtime.h"
#include "llama4/build_info.h"
#include "llama4/error.h"
#include "llama4/roofline.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "llama4_native core (C++): ops, model graph and KV cache";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const llama4::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const llama4::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const llama4::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  // Registered after the generic translator so that it is tried first (pybind11 tries
  // translators in reverse order): CacheFullError would otherwise surface as a RuntimeError.
  py::register_exception<llama4::CacheFullError>(m, "CacheFullError", PyExc_RuntimeError);
  // ConfigError / CheckpointError: ValueError subclasses; a ConfigError carries .field and .file.
  static py::handle config_error = PyErr_NewException("llama4_native._C.ConfigError", PyExc_ValueError, nullptr);
  static py::handle checkpoint_error =
      PyErr_NewException("llama4_native._C.CheckpointError", PyExc_ValueError, nullptr);
  m.attr("ConfigError") = config_error;
  m.attr("CheckpointError") = checkpoint_error;
  // Messages and paths come from files: bytes that are not UTF-8 are kept as \xNN escapes.
  static const auto text = [](const std::string& s) {
    return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "backslashreplace"));
  };
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const llama4::ConfigError& e) {
      py::object err = config_error(text(e.what()));
      err.attr("field") = text(e.field());
      err.attr("file") = text(e.file());
      PyErr_SetObject(config_error.ptr(), err.ptr());
    } catch (const llama4::CheckpointError& e) {
      PyErr_SetObject(checkpoint_error.ptr(), text(e.what()).ptr());
    }
  });

  m.def("build_info", [] {
    const llama4::BuildInfo b = llama4::build_info();
    py::dict d;
    d["version"] = b.version;
    d["backends"] = b.backends;
    d["cuda_runtime_version"] = b.cuda_runtime_version;
    d["cuda_archs"] = b.cuda_archs;
    d["cutlass_version"] = b.cutlass_version;
    d["blas"] = b.blas;
    d["tokenizer"] = b.tokenizer;
    d["pcre2_version"] = b.pcre2_version;
    d["compiler"] = b.compiler;
    d["cpu_threads"] = b.cpu_threads;
    return d;
  });
  m.def("cuda_available", &llama4::cuda_available);
  m.def("cuda_device_count", &llama4::cuda_device_count);
  m.def("set_cpu_threads", &llama4::set_cpu_threads, py::arg("n"));
  // The stream-ordered pool behind the ops' CUDA temporaries (cuda/allocator.cu): what it holds
  // from the driver and what is handed out, now and at the high-water mark.
  m.def("cuda_memory_stats", [](int device) {
    const llama4::cuda::PoolStats s = llama4::cuda::pool_stats(device);
    py::dict d;
    d["reserved_bytes"] = s.reserved_bytes;
    d["used_bytes"] = s.used_bytes;
    d["reserved_high"] = s.reserved_high;
    d["used_high"] = s.used_high;
    return d;
  }, py::arg("device") = 0);
  m.def("cuda_memory_info", [](int device) {
    const llama4::cuda::MemoryInfo m = llama4::cuda::memory_info(device);
    return py::make_tuple(m.free_bytes, m.total_bytes);
  }, py::arg("device") = 0);
  m.def("cpu_has_avx512_bf16", &llama4::cpu_has_avx512_bf16);
  // Roofline probes (llama4/roofline.h), for the benchmarks.
  m.def("cpu_read_probe", [](const py::object& buffer) {
    const llama4::python::BorrowedView b = llama4::python::as_view(buffer, "buffer");
    LLAMA4_CHECK_ARG(b.view.device.is_cpu() && b.view.is_contiguous(),
                     "cpu_read_probe: 'buffer' must be a contiguous CPU tensor");
    const int64_t bytes = b.view.numel() * int64_t(llama4::element_size(b.view.dtype));
    py::gil_scoped_release nogil;
    return llama4::cpu_read_probe(b.view.data, bytes);
  }, py::arg("buffer"));
  m.def("cpu_bf16_peak_probe", [](int64_t iterations) {
    py::gil_scoped_release nogil;
    return llama4::cpu_bf16_peak_probe(iterations);
  }, py::arg("iterations"));

  llama4::python::register_tensor_bridge(m);
  llama4::python::register_ops(m);
  llama4::python::register_model(m);
  llama4::python::register_attention(m);
  llama4::python::register_moe(m);
  llama4::python::register_moe_int4(m);
  llama4::python::register_moe_int4_kernels(m);
  llama4::python::register_vision(m);
  llama4::python::register_sampling(m);
  llama4::python::register_scheduler(m);
  llama4::python::register_text(m);
  llama4::python::register_config(m);
  llama4::python::register_checkpoint(m);
  llama4::python::register_plan(m);
  llama4::python::register_parallel(m);
}
