// Bindings of the INT4 ops (llama4/moe_int4.h): the grouped GEMM, the dense linear and the quantizer. Outputs
// may be passed in (preallocated, e.g. by a benchmark); otherwise they are allocated on the
// input's device.
#include <pybind11/pybind11.h>

#include "llama4/moe_int4.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

py::object grouped_gemm(const py::object& x, const py::object& w, const py::object& w_scale,
                        const py::object& offsets, const py::object& out, const py::object& workspace) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), wv = call.view(w, "w"), sv = call.view(w_scale, "w_scale"),
                     ov = call.view(offsets, "expert_offsets"), ws = call.optional(workspace, "workspace");
  const int64_t R = xv.view.ndim >= 1 ? xv.view.size(0) : 0, N = wv.view.ndim >= 2 ? wv.view.size(1) : 0;
  Output o(call, out, {R, N}, DType::BF16);
  {
    py::gil_scoped_release nogil;
    ops::moe_grouped_gemm_int4(call.ctx, o.view, xv, wv, sv, ov, ws);
  }
  return o.result();
}

py::object linear(const py::object& x, const py::object& w, const py::object& w_scale, const py::object& out,
                  const py::object& workspace) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), wv = call.view(w, "w"), sv = call.view(w_scale, "w_scale"),
                     ws = call.optional(workspace, "workspace");
  const int64_t R = xv.view.ndim >= 1 ? xv.view.size(0) : 0, N = wv.view.ndim >= 1 ? wv.view.size(0) : 0;
  Output o(call, out, {R, N}, DType::BF16);
  {
    py::gil_scoped_release nogil;
    ops::linear_int4(call.ctx, o.view, xv, wv, sv, ws);
  }
  return o.result();
}

py::tuple quantize(const py::object& w, int64_t group) {
  const CallContext call(w, "w");
  const BorrowedView wv = call.view(w, "w");
  Shape qs = wv.view.sizes(), ss = wv.view.sizes();
  if (!qs.empty()) {
    qs.back() = qs.back() / 2;
    ss.back() = group > 0 ? ss.back() / group : 0;
  }
  Tensor q = call.empty(qs, DType::U8), s = call.empty(ss, DType::BF16);
  {
    py::gil_scoped_release nogil;
    ops::quantize_int4_grouped(call.ctx, q, s, wv, group);
  }
  return py::make_tuple(call.out(q), call.out(s));
}

}  // namespace

void register_moe_int4(py::module_& m) {
  m.def("moe_grouped_gemm_int4", &grouped_gemm, py::arg("x"), py::arg("w"), py::arg("w_scale"),
        py::arg("expert_offsets"), py::arg("out") = py::none(), py::arg("workspace") = py::none());
  m.def("linear_int4", &linear, py::arg("x"), py::arg("w"), py::arg("w_scale"), py::arg("out") = py::none(),
        py::arg("workspace") = py::none());
  m.def("quantize_int4_grouped", &quantize, py::arg("w"), py::arg("group"));
}

}  // namespace llama4::python
