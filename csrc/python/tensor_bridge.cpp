// DLPack bridge: Python objects -> TensorView (borrowed), Tensor -> DLPack capsule (owned).
#include "python/tensor_bridge.h"

#include <pybind11/stl.h>  // Shape (std::vector<int64_t>) -> Python, for DLPackTensor.shape

#include <memory>
#include <string>
#include <vector>

#include "cuda/runtime.h"
#include "llama4/error.h"
#include "python/dlpack_abi.h"

namespace llama4::python {

// A readable name for any DLPack dtype, so that errors say "float64", not a type code.
static std::string dlpack_dtype_name(const dlpack::DataType& t) {
  const std::string bits = std::to_string(int(t.bits));
  switch (t.code) {
    case dlpack::kInt: return "int" + bits;
    case dlpack::kUInt: return "uint" + bits;
    case dlpack::kFloat: return "float" + bits;
    case dlpack::kBfloat: return "bfloat" + bits;
    case dlpack::kComplex: return "complex" + bits;
    case dlpack::kBool: return "bool";
    default: return "DLPack type code " + std::to_string(int(t.code)) + " with " + bits + " bits";
  }
}

static DType dtype_from_dlpack(const dlpack::DataType& t, const char* name) {
  LLAMA4_CHECK_TYPE(t.lanes == 1, "'", name, "': vector dtypes (lanes=", t.lanes, ") are not supported");
  if (t.code == dlpack::kFloat && t.bits == 32) return DType::F32;
  if (t.code == dlpack::kFloat && t.bits == 16) return DType::F16;
  if (t.code == dlpack::kBfloat && t.bits == 16) return DType::BF16;
  if (t.code == dlpack::kFloat8_e4m3fn && t.bits == 8) return DType::F8E4M3;
  if (t.code == dlpack::kInt && t.bits == 32) return DType::I32;
  if (t.code == dlpack::kInt && t.bits == 64) return DType::I64;
  if (t.code == dlpack::kUInt && t.bits == 8) return DType::U8;
  throw TypeError(detail::concat("'", name, "' has dtype ", dlpack_dtype_name(t),
                                 ", which llama4_native does not handle; supported: float32, "
                                 "bfloat16, float16, float8_e4m3fn, int32, int64, uint8"));
}

static dlpack::DataType dtype_to_dlpack(DType t) {
  switch (t) {
    case DType::F32: return {dlpack::kFloat, 32, 1};
    case DType::BF16: return {dlpack::kBfloat, 16, 1};
    case DType::F16: return {dlpack::kFloat, 16, 1};
    case DType::F8E4M3: return {dlpack::kFloat8_e4m3fn, 8, 1};
    case DType::I32: return {dlpack::kInt, 32, 1};
    case DType::I64: return {dlpack::kInt, 64, 1};
    case DType::U8: return {dlpack::kUInt, 8, 1};
  }
  return {0, 0, 0};
}

// The DLPack `stream` argument naming a CUDA stream: 1 for the legacy default stream (handle 0),
// 2 for the per-thread default stream, else the handle itself.
static py::int_ dlpack_stream_arg(void* stream) {
  const auto v = reinterpret_cast<uintptr_t>(stream);
  return py::int_(v == 0 ? uintptr_t(1) : v);
}

// The CUDA stream a DLPack `stream` argument names (None: the legacy default stream, as the
// specification says); *sync = false for -1 (the consumer asks for no synchronisation).
static void* stream_from_dlpack_arg(const py::object& arg, bool* sync) {
  *sync = true;
  if (arg.is_none()) return Context::legacy_stream();
  const long long v = arg.cast<long long>();
  if (v == -1) {
    *sync = false;
    return nullptr;
  }
  LLAMA4_CHECK_ARG(v > 0, "__dlpack__: stream must be -1, None or a positive CUDA stream value, got ", v);
  if (v == 1) return Context::legacy_stream();
  return reinterpret_cast<void*>(uintptr_t(v));  // 2: cudaStreamPerThread's own value
}

// The producer's capsule. We ask for a versioned one (DLPack >= 1.0) first: only it can flag a
// tensor read-only, and without that numpy refuses to export read-only arrays (np.memmap(mode="r"),
// np.frombuffer(bytes)), i.e. memory-mapped checkpoints. Producers without max_version get the old
// call. Tensors that require grad are detached first (torch refuses to export them; ops only read).
// A CUDA tensor is requested for `stream` (DLPack handshake: the producer orders its pending work
// before that stream) when the call has a context on the tensor's device.
static py::object request_capsule(const py::handle& obj, const py::object& stream) {
  py::object src = py::reinterpret_borrow<py::object>(obj);
  if (py::hasattr(src, "requires_grad") && py::hasattr(src, "detach") &&
      py::bool_(src.attr("requires_grad"))) {
    src = src.attr("detach")();
  }
  py::dict kwargs;
  if (!stream.is_none()) kwargs["stream"] = stream;
  try {
    return src.attr("__dlpack__")(py::arg("max_version") = py::make_tuple(1, 0), **kwargs);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;  // a real refusal (BufferError, ...): report it
  }
  return src.attr("__dlpack__")(**kwargs);
}

static void check_dlpack_object(const py::handle& obj, const char* name) {
  LLAMA4_CHECK_TYPE(py::hasattr(obj, "__dlpack__"), "'", name,
                    "' must be a tensor or array supporting __dlpack__ (torch.Tensor, numpy.ndarray), got ",
                    std::string(py::str(py::type::of(obj).attr("__name__"))));
}

// (DLPack device type, index) of an object, from __dlpack_device__ when it has one.
static std::pair<int, int> dlpack_device_of(const py::handle& obj) {
  if (!py::hasattr(obj, "__dlpack_device__")) return {dlpack::kCPU, 0};
  const auto t = obj.attr("__dlpack_device__")().cast<py::tuple>();
  return {t[0].cast<int>(), t[1].cast<int>()};
}

// torch's current stream on cuda:device when torch is imported, else the per-thread default stream.
static void* current_stream(int device) {
  static py::object* modules = new py::object(py::module_::import("sys").attr("modules"));  // never freed
  if (!modules->contains("torch")) return Context::per_thread_stream();
  try {
    const py::object torch = (*modules)["torch"];
    const py::object s = torch.attr("cuda").attr("current_stream")(device);
    return reinterpret_cast<void*>(uintptr_t(s.attr("cuda_stream").cast<unsigned long long>()));
  } catch (py::error_already_set&) {  // a CPU-only torch build next to CUDA tensors of another library
    return Context::per_thread_stream();
  }
}

Context context_on(Device device) {
  return device.is_cuda() ? Context::cuda(device.index, current_stream(device.index)) : Context::cpu();
}

Context context_of(const py::handle& primary, const char* name) {
  check_dlpack_object(primary, name);
  const auto [type, index] = dlpack_device_of(primary);
  if (type == dlpack::kCUDA) return Context::cuda(index, current_stream(index));
  return Context::cpu();
}

// The DLTensor inside a "dltensor_versioned" or "dltensor" capsule (the capsule stays unconsumed:
// its destructor, run when BorrowedView drops it, calls the producer's deleter).
static const dlpack::DLTensor& capsule_tensor(const py::object& capsule, const char* name,
                                              bool* read_only) {
  PyObject* cap = capsule.ptr();
  if (PyCapsule_IsValid(cap, dlpack::kVersionedCapsuleName)) {
    auto* m = static_cast<dlpack::ManagedTensorVersioned*>(
        PyCapsule_GetPointer(cap, dlpack::kVersionedCapsuleName));
    LLAMA4_CHECK_TYPE(m->version.major == dlpack::kMajorVersion, "'", name, "': DLPack version ",
                      m->version.major, ".", m->version.minor, " is not supported (need ",
                      dlpack::kMajorVersion, ".x)");
    *read_only = (m->flags & dlpack::kFlagReadOnly) != 0;
    return m->dl_tensor;
  }
  if (PyCapsule_IsValid(cap, dlpack::kCapsuleName)) {
    *read_only = false;
    return static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(cap, dlpack::kCapsuleName))
        ->dl_tensor;
  }
  throw TypeError(detail::concat("'", name, "': __dlpack__ did not return a DLPack capsule"));
}

BorrowedView as_view(const py::handle& obj, const char* name, const Context* ctx) {
  check_dlpack_object(obj, name);
  py::object stream = py::none();
  if (ctx && ctx->is_cuda()) {
    const auto [type, index] = dlpack_device_of(obj);
    if (type == dlpack::kCUDA && index == ctx->device().index) stream = dlpack_stream_arg(ctx->stream());
  }
  BorrowedView out;
  out.capsule = request_capsule(obj, stream);
  const auto& dl = capsule_tensor(out.capsule, name, &out.read_only);
  LLAMA4_CHECK_ARG(dl.ndim <= kMaxDims, "'", name, "' has ", dl.ndim, " dimensions; at most ",
                   kMaxDims, " are supported");
  Device device;
  if (dl.device.device_type == dlpack::kCPU || dl.device.device_type == dlpack::kCUDAHost) {
    device = Device::cpu();
  } else if (dl.device.device_type == dlpack::kCUDA) {
    device = Device::cuda(dl.device.device_id);
  } else {
    throw TypeError(detail::concat("'", name, "' is on an unsupported device (DLPack device type ",
                                   dl.device.device_type, ")"));
  }
  const DType dtype = dtype_from_dlpack(dl.dtype, name);
  Shape shape(dl.shape, dl.shape + dl.ndim);
  void* data = static_cast<char*>(dl.data) + dl.byte_offset;
  if (dl.strides == nullptr) {
    out.view = TensorView(data, dtype, shape, device);
  } else {
    out.view = TensorView(data, dtype, shape, Shape(dl.strides, dl.strides + dl.ndim), device);
  }
  return out;
}

BorrowedView as_optional_view(const py::handle& obj, const char* name, const Context* ctx) {
  if (obj.is_none()) return BorrowedView{py::none(), TensorView()};
  return as_view(obj, name, ctx);
}

namespace {
// What a capsule owns: the tensor (keeps storage alive) and the shape/stride arrays.
struct ExportContext {
  Tensor tensor;
  std::vector<int64_t> shape, strides;
  dlpack::ManagedTensor managed{};
};

void delete_export(dlpack::ManagedTensor* self) { delete static_cast<ExportContext*>(self->manager_ctx); }

void capsule_destructor(PyObject* capsule) {
  // A consumer renames the capsule to "used_dltensor" and takes over the deleter; otherwise
  // nobody consumed it and we free it here.
  if (PyCapsule_IsValid(capsule, dlpack::kCapsuleName)) {
    auto* m = static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule, dlpack::kCapsuleName));
    if (m && m->deleter) m->deleter(m);
  }
}
}  // namespace

py::capsule DLPackTensor::dlpack(const py::object& stream, const py::object& /*max_version*/) const {
  const Device dev = tensor_.device();
  if (dev.is_cuda()) {
    bool sync = true;
    void* consumer = stream_from_dlpack_arg(stream, &sync);
    if (sync) {
      if (pending_) cuda::stream_wait(dev.index, consumer, stream_);
      cuda::record_stream_use(tensor_.storage(), consumer);
    }
  }
  auto* ctx = new ExportContext;
  ctx->tensor = tensor_;
  const TensorView& v = tensor_.view();
  ctx->shape.assign(v.shape.begin(), v.shape.begin() + v.ndim);
  ctx->strides.assign(v.strides.begin(), v.strides.begin() + v.ndim);
  auto& dl = ctx->managed.dl_tensor;
  dl.data = v.data;
  dl.device = {v.device.is_cuda() ? dlpack::kCUDA : dlpack::kCPU, v.device.index};
  dl.ndim = v.ndim;
  dl.dtype = dtype_to_dlpack(v.dtype);
  dl.shape = ctx->shape.data();
  dl.strides = ctx->strides.data();
  dl.byte_offset = 0;
  ctx->managed.manager_ctx = ctx;
  ctx->managed.deleter = delete_export;
  PyObject* cap = PyCapsule_New(&ctx->managed, dlpack::kCapsuleName, capsule_destructor);
  if (!cap) {
    delete ctx;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(cap);
}

py::tuple DLPackTensor::dlpack_device() const {
  const Device d = tensor_.device();
  return py::make_tuple(int(d.is_cuda() ? dlpack::kCUDA : dlpack::kCPU), d.index);
}

py::object to_python(Tensor t, const Context& ctx) {
  return py::cast(DLPackTensor(std::move(t), ctx.stream(), ctx.is_cuda()));
}
py::object to_python(Tensor t) { return py::cast(DLPackTensor(std::move(t))); }

py::object CallContext::out(Tensor t) const { return to_python(std::move(t), ctx); }

void register_tensor_bridge(py::module_& m) {
  py::class_<DLPackTensor>(m, "DLPackTensor",
                           "An engine-allocated tensor; pass it to torch.from_dlpack or numpy.from_dlpack.")
      .def("__dlpack__",
           [](const DLPackTensor& t, py::object stream, py::object max_version, py::object, py::object) {
             return t.dlpack(stream, max_version);
           },
           py::kw_only(), py::arg("stream") = py::none(),
           py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
           py::arg("copy") = py::none())
      .def("__dlpack_device__", &DLPackTensor::dlpack_device)
      .def_property_readonly("shape", [](const DLPackTensor& t) {
        return py::tuple(py::cast(t.tensor().view().sizes()));
      });
}

}  // namespace llama4::python
