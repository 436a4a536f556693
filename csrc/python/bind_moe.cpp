// Bindings of the FP8 MoE ops (llama4/moe_fp8.h) and the grouped GEMM's configuration heuristic.
// Outputs and workspaces may be passed in (preallocated, e.g. by a benchmark); otherwise the
// outputs are allocated on the input's device and the op allocates its own workspace.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/error.h"
#include "llama4/moe_fp8.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

py::dict gemm_config(int64_t rows, int64_t experts) {
  const MoeGemmConfig c = moe_gemm_config(rows, experts);
  py::dict d;
  d["name"] = c.name();
  d["swap_ab"] = c.swap_ab;
  d["tile"] = py::make_tuple(c.tile_m, c.tile_n, c.tile_k);
  d["cluster"] = py::make_tuple(c.cluster_m, c.cluster_n);
  d["schedule"] = std::string(c.schedule);
  return d;
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0) return Device::cuda(std::stoi(s.substr(5)));
  throw ValueError("device must be 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
}

py::object grouped_gemm(const py::object& a, const py::object& a_scale, const py::object& w,
                        const py::object& w_scale, const py::object& offsets, const py::object& out,
                        const py::object& workspace) {
  const CallContext call(a, "a");
  const BorrowedView av = call.view(a, "a"), sv = call.view(a_scale, "a_scale"), wv = call.view(w, "w"),
                     wsv = call.view(w_scale, "w_scale"), ov = call.view(offsets, "expert_offsets"),
                     ws = call.optional(workspace, "workspace");
  const int64_t R = av.view.ndim >= 1 ? av.view.size(0) : 0, N = wv.view.ndim >= 2 ? wv.view.size(1) : 0;
  Output o(call, out, {R, N}, DType::BF16);
  {
    py::gil_scoped_release nogil;
    ops::moe_grouped_gemm_fp8(call.ctx, o.view, av, sv, wv, wsv, ov, ws);
  }
  return o.result();
}

py::object moe_fp8(const py::object& x, const py::object& logits, const py::object& shared,
                   const py::object& gate_up, const py::object& gate_up_scale, const py::object& down,
                   const py::object& down_scale, int64_t top_k, float scale_ub, const py::object& out,
                   const py::object& workspace) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), lv = call.view(logits, "router_logits"),
                     sv = call.view(shared, "shared"), gu = call.view(gate_up, "gate_up"),
                     gus = call.view(gate_up_scale, "gate_up_scale"), dn = call.view(down, "down"),
                     dns = call.view(down_scale, "down_scale"), ws = call.optional(workspace, "workspace");
  Output o(call, out, xv.view.sizes(), xv.view.dtype);
  const ops::MoeFp8Experts ex{gu.view, gus.view, dn.view, dns.view};
  {
    py::gil_scoped_release nogil;
    ops::moe_fp8(call.ctx, o.view, xv, lv, sv, ex, top_k, scale_ub, ws);
  }
  return o.result();
}

}  // namespace

void register_moe(py::module_& m) {
  m.def("moe_gemm_config", &gemm_config, py::arg("rows"), py::arg("experts"),
        "The CUDA FP8 grouped GEMM's tile configuration for `rows` rows over `experts` experts");
  m.def("moe_grouped_gemm_fp8", &grouped_gemm, py::arg("a"), py::arg("a_scale"), py::arg("w"),
        py::arg("w_scale"), py::arg("expert_offsets"), py::arg("out") = py::none(),
        py::arg("workspace") = py::none());
  m.def("moe_grouped_gemm_fp8_workspace_bytes",
        [](const std::string& device, int64_t experts) {
          return ops::moe_grouped_gemm_fp8_workspace_bytes(parse_device(device), experts);
        },
        py::arg("device"), py::arg("experts"));
  m.def("moe_fp8", &moe_fp8, py::arg("x"), py::arg("router_logits"), py::arg("shared"),
        py::arg("gate_up"), py::arg("gate_up_scale"), py::arg("down"), py::arg("down_scale"),
        py::arg("top_k"), py::arg("scale_ub"), py::arg("out") = py::none(),
        py::arg("workspace") = py::none());
  m.def("moe_fp8_workspace_bytes",
        [](const std::string& device, int64_t tokens, int64_t hidden, int64_t intermediate,
           int64_t experts, int64_t top_k) {
          return ops::moe_fp8_workspace_bytes(parse_device(device), tokens, hidden, intermediate,
                                              experts, top_k);
        },
        py::arg("device"), py::arg("tokens"), py::arg("hidden"), py::arg("intermediate"),
        py::arg("experts"), py::arg("top_k"));
}

}  // namespace llama4::python
