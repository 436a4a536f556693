// Bindings of the ops: each converts its arguments to views (zero-copy), allocates the outputs on
// the input's device, releases the GIL around the computation and returns DLPackTensor objects.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/error.h"
#include "llama4/linear_config.h"
#include "llama4/ops.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

py::object rms_norm(const py::object& x, const py::object& weight, float eps) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), wv = call.optional(weight, "weight");
  Tensor out = call.empty(xv.view.sizes(), xv.view.dtype);
  {
    py::gil_scoped_release nogil;
    ops::rms_norm(call.ctx, out, xv, wv, eps);
  }
  return call.out(out);
}

py::object rope(const py::object& x, const py::object& positions, const py::object& inv_freq) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), pv = call.view(positions, "positions"),
                     fv = call.view(inv_freq, "inv_freq");
  Tensor out = call.empty(xv.view.sizes(), xv.view.dtype);
  {
    py::gil_scoped_release nogil;
    ops::rope(call.ctx, out, xv, pv, fv);
  }
  return call.out(out);
}

py::object silu_gate(const py::object& gate, const py::object& up) {
  const CallContext call(gate, "gate");
  const BorrowedView gv = call.view(gate, "gate"), uv = call.view(up, "up");
  Tensor out = call.empty(gv.view.sizes(), gv.view.dtype);
  {
    py::gil_scoped_release nogil;
    ops::silu_gate(call.ctx, out, gv, uv);
  }
  return call.out(out);
}

py::tuple quantize_fp8_rowwise(const py::object& x, float scale_ub) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x");
  const int64_t rows = xv.view.ndim >= 1 ? xv.view.size(0) : 0;
  Tensor q = call.empty(xv.view.sizes(), DType::F8E4M3);
  Tensor scale = call.empty({rows}, DType::F32);
  {
    py::gil_scoped_release nogil;
    ops::quantize_fp8_rowwise(call.ctx, q, scale, xv, scale_ub);
  }
  return py::make_tuple(call.out(q), call.out(scale));
}

DType parse_float_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  if (s == "float8_e4m3fn") return DType::F8E4M3;
  throw ValueError("dtype must be 'float32', 'bfloat16', 'float16' or 'float8_e4m3fn', got '" + s + "'");
}

py::object dequantize_fp8_rowwise(const py::object& q, const py::object& scale, const std::string& dtype) {
  const CallContext call(q, "q");
  const BorrowedView qv = call.view(q, "q"), sv = call.view(scale, "scale");
  Tensor out = call.empty(qv.view.sizes(), parse_float_dtype(dtype));
  {
    py::gil_scoped_release nogil;
    ops::dequantize_fp8_rowwise(call.ctx, out, qv, sv);
  }
  return call.out(out);
}

py::object cast(const py::object& x, const std::string& dtype) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x");
  Tensor out = call.empty(xv.view.sizes(), parse_float_dtype(dtype));
  {
    py::gil_scoped_release nogil;
    ops::cast(call.ctx, out, xv);
  }
  return call.out(out);
}

py::object contiguous_copy(const py::object& x) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x");
  Tensor out;
  {
    py::gil_scoped_release nogil;
    out = ops::contiguous(call.ctx, xv);
  }
  return call.out(out);
}

std::vector<float> rope_inv_freq(int head_dim, double theta, const std::string& rope_type, float factor,
                                 float low_freq_factor, float high_freq_factor,
                                 int64_t original_max_position_embeddings) {
  RopeScaling s;
  if (rope_type == "llama3") {
    s.type = RopeScaling::Type::Llama3;
  } else if (rope_type != "default") {
    throw ValueError("rope_type must be 'default' or 'llama3', got '" + rope_type + "'");
  }
  s.factor = factor;
  s.low_freq_factor = low_freq_factor;
  s.high_freq_factor = high_freq_factor;
  s.original_max_position_embeddings = original_max_position_embeddings;
  return llama4::rope_inv_freq(head_dim, theta, s);
}

py::object linear(const py::object& x, const py::object& w, const std::string& out_dtype) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), wv = call.view(w, "w");
  const DType od = out_dtype.empty() ? xv.view.dtype : parse_float_dtype(out_dtype);
  const int64_t M = xv.view.ndim == 2 ? xv.view.size(0) : 0, N = wv.view.ndim == 2 ? wv.view.size(0) : 0;
  Tensor out = call.empty({M, N}, od);
  {
    py::gil_scoped_release nogil;
    ops::linear(call.ctx, out, xv, wv);
  }
  return call.out(out);
}

std::string linear_kernel_of(int arch, const std::string& x_dtype, const std::string& out_dtype, int64_t m,
                             int64_t n, int64_t k, int64_t groups, int64_t ldx, bool aligned16) {
  LinearProblem p;
  p.arch = arch;
  p.x_dtype = parse_float_dtype(x_dtype);
  p.out_dtype = parse_float_dtype(out_dtype);
  p.m = m;
  p.n = n;
  p.k = k;
  p.groups = groups;
  p.ldx = ldx < 0 ? k : ldx;
  p.aligned16 = aligned16;
  return linear_kernel_name(linear_kernel(p));
}

py::object add(const py::object& a, const py::object& b) {
  const CallContext call(a, "a");
  const BorrowedView av = call.view(a, "a"), bv = call.view(b, "b");
  Tensor out = call.empty(av.view.sizes(), av.view.dtype);
  {
    py::gil_scoped_release nogil;
    ops::add(call.ctx, out, av, bv);
  }
  return call.out(out);
}

py::object grouped_linear(const py::object& x, const py::object& w, const py::object& offsets) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), wv = call.view(w, "w"), ov = call.view(offsets, "offsets");
  const int64_t R = xv.view.ndim == 2 ? xv.view.size(0) : 0, N = wv.view.ndim == 3 ? wv.view.size(1) : 0;
  Tensor out = call.empty({R, N}, xv.view.dtype);
  {
    py::gil_scoped_release nogil;
    ops::grouped_linear(call.ctx, out, xv, wv, ov);
  }
  return call.out(out);
}

py::object embedding(const py::object& table, const py::object& ids) {
  const CallContext call(table, "table");
  const BorrowedView tv = call.view(table, "table"), iv = call.view(ids, "ids");
  const int64_t T = iv.view.ndim >= 1 ? iv.view.size(0) : 0, D = tv.view.ndim == 2 ? tv.view.size(1) : 0;
  Tensor out = call.empty({T, D}, tv.view.dtype);
  {
    py::gil_scoped_release nogil;
    ops::embedding(call.ctx, out, tv, iv);
  }
  return call.out(out);
}

py::tuple moe_route(const py::object& logits, int64_t k, const std::string& score_dtype) {
  const CallContext call(logits, "logits");
  const BorrowedView lv = call.view(logits, "logits");
  const int64_t T = lv.view.ndim >= 1 ? lv.view.size(0) : 0;
  Tensor ids = call.empty({T, k}, DType::I32);
  Tensor scores = call.empty({T, k}, score_dtype.empty() ? lv.view.dtype : parse_float_dtype(score_dtype));
  {
    py::gil_scoped_release nogil;
    ops::moe_route(call.ctx, ids, scores, lv);
  }
  return py::make_tuple(call.out(ids), call.out(scores));
}

// In place, as ops::moe_localize.
void moe_localize(const py::object& topk_ids, int64_t first, int64_t count) {
  const CallContext call(topk_ids, "topk_ids");
  const BorrowedView iv = call.view(topk_ids, "topk_ids");
  LLAMA4_CHECK_ARG(!iv.read_only, "moe_localize: 'topk_ids' is read-only");
  py::gil_scoped_release nogil;
  ops::moe_localize(call.ctx, iv, first, count);
}

py::tuple moe_permute(const py::object& x, const py::object& topk_ids, const py::object& topk_scores,
                      int64_t num_experts) {
  const CallContext call(x, "x");
  const BorrowedView xv = call.view(x, "x"), iv = call.view(topk_ids, "topk_ids"),
                     sv = call.view(topk_scores, "topk_scores");
  const int64_t T = xv.view.ndim == 2 ? xv.view.size(0) : 0, D = xv.view.ndim == 2 ? xv.view.size(1) : 0;
  const int64_t k = iv.view.ndim == 2 ? iv.view.size(1) : 0;
  LLAMA4_CHECK_ARG(num_experts >= 1, "moe_permute: num_experts must be >= 1, got ", num_experts);
  Tensor xp = call.empty({T * k, D}, xv.view.dtype), ptok = call.empty({T * k}, DType::I32),
         pslot = call.empty({T * k}, DType::I32), off = call.empty({num_experts + 1}, DType::I32);
  {
    py::gil_scoped_release nogil;
    ops::moe_permute(call.ctx, xp, ptok, pslot, off, xv, iv, sv);
  }
  return py::make_tuple(call.out(xp), call.out(ptok), call.out(pslot), call.out(off));
}

py::object moe_unpermute(const py::object& y_perm, const py::object& perm_slot, const py::object& shared) {
  const CallContext call(shared, "shared");
  const BorrowedView yv = call.view(y_perm, "y_perm"), pv = call.view(perm_slot, "perm_slot"),
                     sv = call.view(shared, "shared");
  Tensor out = call.empty(sv.view.sizes(), sv.view.dtype);
  {
    py::gil_scoped_release nogil;
    ops::moe_unpermute(call.ctx, out, yv, pv, sv);
  }
  return call.out(out);
}

}  // namespace

void register_ops(py::module_& m) {
  m.def("linear", &linear, py::arg("x"), py::arg("w"), py::arg("out_dtype") = "");
  m.def("linear_kernel", &linear_kernel_of, py::arg("arch"), py::arg("x_dtype"), py::arg("out_dtype"),
        py::arg("m"), py::arg("n"), py::arg("k"), py::arg("groups") = 0, py::arg("ldx") = -1,
        py::arg("aligned16") = true,
        "The CUDA kernel linear (groups = 0) or grouped_linear (groups >= 1) runs for this problem "
        "on a device of compute capability `arch` (major * 10 + minor): llama4/linear_config.h");
  m.def("add", &add, py::arg("a"), py::arg("b"));
  m.def("grouped_linear", &grouped_linear, py::arg("x"), py::arg("w"), py::arg("offsets"));
  m.def(
      "expert_layout",
      [](const py::object& w) {
        const ops::ExpertLayout l = ops::expert_layout(as_view(w, "w").view);
        return std::string(l == ops::ExpertLayout::NK ? "nk" : l == ops::ExpertLayout::KN ? "kn" : "other");
      },
      py::arg("w"), "How expert weights [E, N, K] lie in memory: 'nk', 'kn' or 'other' (llama4/ops.h)");
  m.def("embedding", &embedding, py::arg("table"), py::arg("ids"));
  m.def("moe_route", &moe_route, py::arg("logits"), py::arg("k"), py::arg("score_dtype") = "");
  m.def("moe_localize", &moe_localize, py::arg("topk_ids"), py::arg("first"), py::arg("count"));
  m.def("moe_permute", &moe_permute, py::arg("x"), py::arg("topk_ids"), py::arg("topk_scores"),
        py::arg("num_experts"));
  m.def("moe_unpermute", &moe_unpermute, py::arg("y_perm"), py::arg("perm_slot"), py::arg("shared"));
  m.def("rms_norm", &rms_norm, py::arg("x"), py::arg("weight"), py::arg("eps"));
  m.def("rope", &rope, py::arg("x"), py::arg("positions"), py::arg("inv_freq"));
  m.def("silu_gate", &silu_gate, py::arg("gate"), py::arg("up"));
  m.def("quantize_fp8_rowwise", &quantize_fp8_rowwise, py::arg("x"), py::arg("scale_ub"));
  m.def("dequantize_fp8_rowwise", &dequantize_fp8_rowwise, py::arg("q"), py::arg("scale"),
        py::arg("dtype"));
  m.def("cast", &cast, py::arg("x"), py::arg("dtype"));
  m.def("contiguous", &contiguous_copy, py::arg("x"));
  m.def("rope_inv_freq", &rope_inv_freq, py::arg("head_dim"), py::arg("theta"), py::arg("rope_type"),
        py::arg("factor") = 1.0f, py::arg("low_freq_factor") = 1.0f, py::arg("high_freq_factor") = 4.0f,
        py::arg("original_max_position_embeddings") = 8192);
}

}  // namespace llama4::python
