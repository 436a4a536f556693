// Zero-copy conversion between Python objects and llama4 tensors through DLPack:
//  - as_view(obj): a TensorView of any object with __dlpack__ (torch tensors, numpy arrays, also
//    read-only ones and tensors that require grad); the returned BorrowedView keeps the capsule
//    (and so the producer's memory) alive.
//  - to_python(Tensor): a DLPackTensor object that torch.from_dlpack / numpy.from_dlpack accept
//    without copying; it owns the Tensor's storage until the consumer releases it.
#pragma once
#include <pybind11/pybind11.h>

#include "llama4/tensor.h"

namespace llama4::python {

namespace py = pybind11;

struct BorrowedView {
  py::object capsule;  // holds the producer's memory
  TensorView view;
  bool read_only = false;  // the producer flagged it read-only (e.g. a memory-mapped checkpoint)
  operator const TensorView&() const { return view; }
};

// `name` is used in error messages ("'x' must support __dlpack__").
BorrowedView as_view(const py::handle& obj, const char* name);
// None -> an undefined view.
BorrowedView as_optional_view(const py::handle& obj, const char* name);

// The Python-visible owner of an engine-allocated tensor.
class DLPackTensor {
 public:
  explicit DLPackTensor(Tensor t) : tensor_(std::move(t)) {}
  py::capsule dlpack(const py::object& stream, const py::object& max_version) const;
  py::tuple dlpack_device() const;
  const Tensor& tensor() const { return tensor_; }

 private:
  Tensor tensor_;
};

py::object to_python(Tensor t);  // a DLPackTensor
void register_tensor_bridge(py::module_& m);

}  // namespace llama4::python
