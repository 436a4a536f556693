// Bindings of the communicator (llama4/communicator.h): stores, gloo / NCCL communicators, their
// collectives on DLPack tensors, and RankError (llama4_native.RankError, a RuntimeError with .rank).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/communicator.h"
#include "llama4/shard.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

// A store written in Python (llama4_native.parallel wraps torch.distributed's TCPStore).
class PyStore : public Store {
 public:
  using Store::Store;
  void set(const std::string& key, const std::string& value) override {
    PYBIND11_OVERRIDE_PURE(void, Store, set, key, py::bytes(value));
  }
  std::string get(const std::string& key, double timeout_s) override {
    py::gil_scoped_acquire gil;
    py::function f = py::get_override(static_cast<const Store*>(this), "get");
    LLAMA4_CHECK(f, "Store subclass does not define get(key, timeout_s)");
    py::object v = f(key, timeout_s);
    if (v.is_none())
      throw RankError(-1, "store: key '" + key + "' was not set within " + std::to_string(timeout_s) +
                              " s (a rank did not start or join)");
    return v.cast<std::string>();
  }
};

CommOptions options(int rank, int world_size, double timeout_s, double rendezvous_timeout_s, const std::string& host,
                    const std::string& prefix) {
  CommOptions o;
  o.rank = rank;
  o.world_size = world_size;
  o.timeout_s = timeout_s;
  o.rendezvous_timeout_s = rendezvous_timeout_s;
  o.host = host;
  o.prefix = prefix;
  return o;
}

}  // namespace

void register_parallel(py::module_& m) {
  static py::handle rank_error = PyErr_NewException("llama4_native._C.RankError", PyExc_RuntimeError, nullptr);
  m.attr("RankError") = rank_error;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const RankError& e) {
      py::object err = rank_error(py::str(e.what()));
      err.attr("rank") = e.rank() >= 0 ? py::object(py::int_(e.rank())) : py::object(py::none());
      PyErr_SetObject(rank_error.ptr(), err.ptr());
    }
  });

  py::class_<Store, PyStore, std::shared_ptr<Store>>(m, "Store",
      "A key-value table for the ranks' rendezvous; subclass it with set(key, value: bytes) and "
      "get(key, timeout_s) -> bytes, or None when the key was not set in time.")
      .def(py::init<>())
      .def("set", [](Store& s, const std::string& k, const py::bytes& v) { s.set(k, std::string(v)); },
           py::arg("key"), py::arg("value"))
      .def("get", [](Store& s, const std::string& k, double t) { return py::bytes(s.get(k, t)); },
           py::arg("key"), py::arg("timeout_s"));
  py::class_<FileStore, Store, std::shared_ptr<FileStore>>(m, "FileStore")
      .def(py::init<std::string>(), py::arg("dir"))
      .def_property_readonly("dir", &FileStore::dir);

  py::class_<Communicator, std::shared_ptr<Communicator>>(m, "Communicator")
      .def_property_readonly("rank", &Communicator::rank)
      .def_property_readonly("world_size", &Communicator::size)
      .def_property_readonly("timeout_s", &Communicator::timeout_s)
      .def_property_readonly("backend", &Communicator::backend)
      .def_property_readonly("calls", &Communicator::calls)
      .def_property_readonly("seconds", &Communicator::seconds, "wall time spent in collectives so far")
      .def("all_reduce", [](Communicator& c, const py::object& t) {
        CallContext call(t, "t");
        const BorrowedView v = call.view(t, "t");
        LLAMA4_CHECK_ARG(!v.read_only, "all_reduce: 't' is read-only");
        py::gil_scoped_release nogil;
        c.all_reduce(call.ctx, v);
        c.wait(call.ctx);
      }, py::arg("t"), "t = the sum of every rank's t (in place; float32 or bfloat16, contiguous).")
      .def("broadcast", [](Communicator& c, const py::object& t, int root) {
        CallContext call(t, "t");
        const BorrowedView v = call.view(t, "t");
        py::gil_scoped_release nogil;
        c.broadcast(call.ctx, v, root);
        c.wait(call.ctx);
      }, py::arg("t"), py::arg("root") = 0, "t = root's t on every rank (in place, any dtype).")
      .def("all_gather", [](Communicator& c, const py::object& out, const py::object& in) {
        CallContext call(in, "in");
        const BorrowedView o = call.view(out, "out"), i = call.view(in, "in");
        py::gil_scoped_release nogil;
        c.all_gather(call.ctx, o, i);
        c.wait(call.ctx);
      }, py::arg("out"), py::arg("in"), "out = every rank's `in`, in rank order.");

  m.attr("default_rendezvous_timeout_s") = CommOptions().rendezvous_timeout_s;
  m.def("make_gloo_communicator", [](std::shared_ptr<Store> store, int rank, int world_size, double timeout_s,
                                     const std::string& host, const std::string& prefix, double rendezvous_timeout_s) {
    const CommOptions o = options(rank, world_size, timeout_s, rendezvous_timeout_s, host, prefix);
    py::gil_scoped_release nogil;  // the rendezvous waits for the other ranks
    return make_gloo_communicator(std::move(store), o);
  }, py::arg("store"), py::arg("rank"), py::arg("world_size"), py::arg("timeout_s") = 60.0,
     py::arg("host") = "127.0.0.1", py::arg("prefix") = "llama4",
     py::arg("rendezvous_timeout_s") = CommOptions().rendezvous_timeout_s);
  m.def("make_nccl_communicator", [](std::shared_ptr<Store> store, int rank, int world_size, int device,
                                     double timeout_s, const std::string& prefix, double rendezvous_timeout_s) {
    const CommOptions o = options(rank, world_size, timeout_s, rendezvous_timeout_s, "", prefix);
    py::gil_scoped_release nogil;
    return make_nccl_communicator(std::move(store), o, device);
  }, py::arg("store"), py::arg("rank"), py::arg("world_size"), py::arg("device"), py::arg("timeout_s") = 60.0,
     py::arg("prefix") = "llama4", py::arg("rendezvous_timeout_s") = CommOptions().rendezvous_timeout_s);
  m.def("text_shard_weight_bytes", [](const py::object& config, const std::string& dtype,
                                      const std::vector<int>& fp8_moe_layers, int rank, int world_size,
                                      const std::vector<int>& int4_mlp_layers) {
    LLAMA4_CHECK_ARG(dtype == "float32" || dtype == "bfloat16", "dtype must be 'float32' or 'bfloat16', got '", dtype, "'");
    return text_shard_weight_bytes(text_config_from_py(config), dtype == "float32" ? DType::F32 : DType::BF16,
                                   fp8_moe_layers, rank, world_size, int4_mlp_layers);
  }, py::arg("config"), py::arg("dtype"), py::arg("fp8_moe_layers"), py::arg("rank"), py::arg("world_size"),
     py::arg("int4_mlp_layers") = std::vector<int>{},
     "Bytes of the text-decoder weights rank `rank` of `world_size` holds (llama4/shard.h)");
  m.def("gloo_available", &gloo_available);
  m.def("nccl_available", &nccl_available);
  m.def("nccl_library_error", &nccl_library_error);
}

}  // namespace llama4::python
