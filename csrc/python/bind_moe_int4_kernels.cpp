// Bindings of the CUDA INT4 grouped GEMM's kernel choice (llama4/moe_int4_config.h): the pure host
// rule, and the op with a named kernel (tests and benchmarks run both kernels on the same inputs).
#include <pybind11/pybind11.h>

#include "llama4/error.h"
#include "llama4/moe_int4.h"
#include "llama4/moe_int4_config.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

MoeInt4Kernel parse_kernel(const std::string& s) {
  if (s == "gemv") return MoeInt4Kernel::Gemv;
  if (s == "cutlass") return MoeInt4Kernel::Cutlass;
  throw ValueError("moe_grouped_gemm_int4_kernel: 'kernel' must be 'gemv' or 'cutlass', got '" + s + "'");
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0) return Device::cuda(std::stoi(s.substr(5)));
  throw ValueError("device must be 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
}

py::dict config(int64_t rows, int64_t experts, int64_t n, int64_t group_size) {
  const MoeInt4GemmConfig c = moe_int4_gemm_config(rows, experts, n, group_size);
  py::dict d;
  d["name"] = c.name();
  d["kernel"] = c.name();
  return d;
}

py::object grouped_gemm(const py::object& x, const py::object& w, const py::object& w_scale,
                        const py::object& offsets, const std::string& kernel, const py::object& out,
                        const py::object& workspace) {
  const MoeInt4Kernel k = parse_kernel(kernel);
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), wv = call.view(w, "w"), sv = call.view(w_scale, "w_scale"),
                     ov = call.view(offsets, "expert_offsets"), ws = call.optional(workspace, "workspace");
  const int64_t R = xv.view.ndim >= 1 ? xv.view.size(0) : 0, N = wv.view.ndim >= 2 ? wv.view.size(1) : 0;
  Output o(call, out, {R, N}, DType::BF16);
  {
    py::gil_scoped_release nogil;
    ops::moe_grouped_gemm_int4_kernel(call.ctx, o.view, xv, wv, sv, ov, k, ws);
  }
  return o.result();
}

}  // namespace

void register_moe_int4_kernels(py::module_& m) {
  m.def("moe_int4_gemm_config", &config, py::arg("rows"), py::arg("experts"), py::arg("n"),
        py::arg("group_size"),
        "The CUDA INT4 grouped GEMM's kernel ('gemv' or 'cutlass') for `rows` rows over `experts` "
        "experts, N output channels and group size `group_size`");
  m.def("moe_grouped_gemm_int4_kernel", &grouped_gemm, py::arg("x"), py::arg("w"), py::arg("w_scale"),
        py::arg("expert_offsets"), py::arg("kernel"), py::arg("out") = py::none(),
        py::arg("workspace") = py::none());
  m.def("moe_grouped_gemm_int4_workspace_bytes",
        [](const std::string& device, int64_t experts) {
          return ops::moe_grouped_gemm_int4_workspace_bytes(parse_device(device), experts);
        },
        py::arg("device"), py::arg("experts"));
}

}  // namespace llama4::python
