// Zero-copy conversion between Python objects and llama4 tensors through DLPack, with the DLPack
// stream handshake in both directions:
//  - CallContext(obj): the context an op called from Python runs in: the device of its first
//    tensor argument and, on CUDA, torch's current stream for that device (when torch is imported;
//    else the per-thread default stream).
//  - as_view(obj, name, ctx): a TensorView of any object with __dlpack__ (torch tensors, numpy
//    arrays, also read-only ones and tensors that require grad). A CUDA producer is asked for it
//    with __dlpack__(stream=ctx's stream), so the producer orders its pending writes before work
//    queued on that stream. The BorrowedView keeps the capsule (and the producer's memory) alive.
//  - to_python(Tensor, producer stream): a DLPackTensor that torch.from_dlpack / numpy.from_dlpack
//    accept without copying. When a consumer calls __dlpack__(stream=s), s is made to wait (on the
//    device) for the work queued on the producer stream, and the memory's return to the pool is
//    ordered after s's work too (record_stream).
#pragma once
#include <pybind11/pybind11.h>

#include "llama4/context.h"
#include "llama4/tensor.h"

namespace llama4::python {

namespace py = pybind11;

struct BorrowedView {
  py::object capsule;  // holds the producer's memory
  TensorView view;
  bool read_only = false;  // the producer flagged it read-only (e.g. a memory-mapped checkpoint)
  operator const TensorView&() const { return view; }
};

// `name` is used in error messages ("'x' must support __dlpack__"). Without ctx (weights handed
// to a model at load): no stream is passed, so the producer is not asked to order anything.
BorrowedView as_view(const py::handle& obj, const char* name, const Context* ctx = nullptr);
// None -> an undefined view.
BorrowedView as_optional_view(const py::handle& obj, const char* name, const Context* ctx = nullptr);

// The context of a call from Python whose first tensor argument is `primary` (see above).
Context context_of(const py::handle& primary, const char* name);
// The context of a call from Python on `device` (torch's current stream there on CUDA).
Context context_on(Device device);

// One op call from Python: its context, the views of its arguments (through the handshake) and
// its outputs (allocated in the context, exported with its stream).
struct CallContext {
  CallContext(const py::handle& primary, const char* name) : ctx(context_of(primary, name)) {}
  explicit CallContext(Context c) : ctx(c) {}
  BorrowedView view(const py::handle& obj, const char* name) const { return as_view(obj, name, &ctx); }
  BorrowedView optional(const py::handle& obj, const char* name) const {
    return as_optional_view(obj, name, &ctx);
  }
  Tensor empty(const Shape& shape, DType dtype) const { return ctx.empty(shape, dtype); }
  py::object out(Tensor t) const;
  Context ctx;
};

// An op's output: the caller's `out` tensor (returned as given) or, when out is None, a new one of
// the call's context.
struct Output {
  const CallContext& call;
  py::object given;
  BorrowedView view;
  Tensor owned;
  Output(const CallContext& c, const py::object& out, const Shape& shape, DType dtype) : call(c), given(out) {
    if (out.is_none()) {
      owned = call.empty(shape, dtype);
      view.view = owned.view();
    } else {
      view = call.view(out, "out");
    }
  }
  py::object result() { return given.is_none() ? call.out(owned) : given; }
};

// The Python-visible owner of an engine-allocated tensor. `stream`: the CUDA stream its last
// writes were queued on (consumers wait for it); `pending` false: nothing is queued.
class DLPackTensor {
 public:
  explicit DLPackTensor(Tensor t, void* stream = nullptr, bool pending = false)
      : tensor_(std::move(t)), stream_(stream), pending_(pending) {}
  py::capsule dlpack(const py::object& stream, const py::object& max_version) const;
  py::tuple dlpack_device() const;
  const Tensor& tensor() const { return tensor_; }

 private:
  Tensor tensor_;
  void* stream_;
  bool pending_;
};

// A DLPackTensor for a tensor produced by work queued in ctx.
py::object to_python(Tensor t, const Context& ctx);
// A DLPackTensor for a tensor with no queued writes (host data, a long-lived buffer).
py::object to_python(Tensor t);
void register_tensor_bridge(py::module_& m);

}  // namespace llama4::python
