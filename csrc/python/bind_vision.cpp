// Bindings of the vision tower and its ops:
//   _C.VisionModel(config: VisionConfig | dict, dtype: str, weights: dict).encode(pixel_values) -> [tiles*tpt, D_text]
//   _C.embedding_fused, layer_norm, gelu, add_bias, rope_table, attention_dense, pixel_shuffle, patchify
// Like bind_ops.cpp: zero-copy views in, DLPackTensor out, the GIL released around the work.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/error.h"
#include "llama4/ops.h"
#include "llama4/vision.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

DType model_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  throw ValueError("dtype must be 'float32' or 'bfloat16', got '" + s + "'");
}

struct PyVisionModel {
  py::dict weight_objects;  // keeps the weight memory alive
  std::unique_ptr<VisionModel> model;
};

std::unique_ptr<PyVisionModel> make_vision(const py::object& config, const std::string& dtype,
                                           const py::dict& weights) {
  auto out = std::make_unique<PyVisionModel>();
  out->weight_objects = weights;
  WeightMap views;
  for (const auto& [key, value] : weights) {
    const std::string name = key.cast<std::string>();
    views.emplace(name, as_view(value, name.c_str()).view);  // memory owned by weight_objects
  }
  VisionConfig cfg = vision_config_from_py(config);
  const DType dt = model_dtype(dtype);
  py::gil_scoped_release nogil;
  out->model = std::make_unique<VisionModel>(std::move(cfg), dt, std::move(views));
  return out;
}

py::object encode(PyVisionModel& m, const py::object& pixel_values) {
  const CallContext call(pixel_values, "pixel_values");
  const BorrowedView pv = call.view(pixel_values, "pixel_values");
  Tensor out;
  {
    py::gil_scoped_release nogil;
    out = m.model->encode(call.ctx, pv);
  }
  return call.out(out);
}

// Placeholders counted here from the ids (a device->host copy for CUDA ids: this binding is the
// op-level entry for tests; the engine counts on its own host copy instead).
py::object embedding_fused(const py::object& table, const py::object& ids, const py::object& features,
                           int64_t image_token_id) {
  const CallContext call(table, "table");
  const BorrowedView tv = call.view(table, "table"), iv = call.view(ids, "ids"),
                     fv = call.optional(features, "image_features");
  LLAMA4_CHECK_ARG(iv.view.ndim == 1, "embedding_fused: 'ids' must be 1-d, got shape ", iv.view.shape_str());
  Tensor out = call.empty({iv.view.size(0), tv.view.ndim == 2 ? tv.view.size(1) : 0}, tv.view.dtype);
  {
    py::gil_scoped_release nogil;
    int64_t count = 0;
    if (image_token_id >= 0 && (iv.view.dtype == DType::I32 || iv.view.dtype == DType::I64)) {
      const Context& copy_ctx = iv.view.device.is_cuda() ? call.ctx : Context::cpu();
      const Tensor host = ops::to_device(copy_ctx, iv.view, Device::cpu());
      for (int64_t t = 0; t < host.numel(); ++t)
        count += (iv.view.dtype == DType::I64 ? host.ptr<int64_t>()[t] : host.ptr<int32_t>()[t]) == image_token_id;
    }
    ops::embedding_fused(call.ctx, out, tv, iv, fv, image_token_id, count);
  }
  return call.out(out);
}

// out = op(ctx, x, ...) with out shaped like x.
template <typename F>
py::object unary_like(const CallContext& call, const py::object& x, const char* name, F&& f) {
  const BorrowedView xv = call.view(x, name);
  Tensor out = call.empty(xv.view.sizes(), xv.view.dtype);
  {
    py::gil_scoped_release nogil;
    f(out.view(), xv.view);
  }
  return call.out(out);
}

}  // namespace

void register_vision(py::module_& m) {
  py::class_<PyVisionModel>(m, "VisionModel", "The Llama 4 vision tower (encoder, adapter, projector)")
      .def(py::init(&make_vision), py::arg("config"), py::arg("dtype"), py::arg("weights"))
      .def("encode", &encode, py::arg("pixel_values"),
           "pixel_values [tiles, C, S, S] -> [tiles * tokens_per_tile, text_hidden_size]")
      .def_property_readonly("tokens_per_tile", [](const PyVisionModel& v) { return v.model->config().tokens_per_tile(); })
      .def_property(
          "max_tiles_per_pass", [](const PyVisionModel& v) { return v.model->max_tiles_per_pass; },
          [](PyVisionModel& v, int64_t n) {
            LLAMA4_CHECK_ARG(n > 0, "max_tiles_per_pass must be positive, got ", n);
            v.model->max_tiles_per_pass = n;
          });

  m.def("embedding_fused", &embedding_fused, py::arg("table"), py::arg("ids"), py::arg("image_features"),
        py::arg("image_token_id"));
  m.def("layer_norm", [](const py::object& x, const py::object& w, const py::object& b, float eps) {
    const CallContext call(x, "x");
    const BorrowedView wv = call.view(w, "weight"), bv = call.view(b, "bias");
    return unary_like(call, x, "x", [&](const TensorView& o, const TensorView& xv) {
      ops::layer_norm(call.ctx, o, xv, wv, bv, eps);
    });
  }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"));
  m.def("gelu", [](const py::object& x) {
    const CallContext call(x, "x");
    return unary_like(call, x, "x", [&](const TensorView& o, const TensorView& xv) { ops::gelu(call.ctx, o, xv); });
  }, py::arg("x"));
  m.def("add_bias", [](const py::object& x, const py::object& bias, const std::string& out_dtype) {
    const CallContext call(x, "x");
    const BorrowedView xv = call.view(x, "x"), bv = call.view(bias, "bias");
    const DType dt = out_dtype.empty() ? xv.view.dtype : out_dtype == "float32" ? DType::F32
                     : out_dtype == "bfloat16" ? DType::BF16 : out_dtype == "float16" ? DType::F16
                     : throw ValueError("add_bias: out_dtype must be '', 'float32', 'bfloat16' or 'float16', got '" + out_dtype + "'");
    Tensor out = call.empty(xv.view.sizes(), dt);
    {
      py::gil_scoped_release nogil;
      ops::add_bias(call.ctx, out, xv, bv);
    }
    return call.out(out);
  }, py::arg("x"), py::arg("bias"), py::arg("out_dtype") = "");
  m.def("rope_table", [](const py::object& x, const py::object& cos, const py::object& sin) {
    const CallContext call(x, "x");
    const BorrowedView cv = call.view(cos, "cos"), sv = call.view(sin, "sin");
    return unary_like(call, x, "x", [&](const TensorView& o, const TensorView& xv) {
      ops::rope_table(call.ctx, o, xv, cv, sv);
    });
  }, py::arg("x"), py::arg("cos"), py::arg("sin"));
  m.def("attention_dense", [](const py::object& q, const py::object& k, const py::object& v, float scale) {
    const CallContext call(q, "q");
    const BorrowedView kv = call.view(k, "k"), vv = call.view(v, "v");
    return unary_like(call, q, "q", [&](const TensorView& o, const TensorView& qv) {
      ops::attention_dense(call.ctx, o, qv, kv, vv, scale);
    });
  }, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("scale"));
  m.def("pixel_shuffle", [](const py::object& x, int64_t factor) {
    const CallContext call(x, "x");
    const BorrowedView xv = call.view(x, "x");
    const TensorView& v = xv.view;
    LLAMA4_CHECK_ARG(v.ndim == 3 && factor >= 1, "pixel_shuffle: 'x' must be 3-d [B, S*S, C] and factor >= 1, got ",
                     v.shape_str(), " and ", factor);
    const int64_t n = v.size(1) / (factor * factor);
    Tensor out = call.empty({v.size(0), n, v.size(2) * factor * factor}, v.dtype);
    {
      py::gil_scoped_release nogil;
      ops::pixel_shuffle(call.ctx, out, v, factor);
    }
    return call.out(out);
  }, py::arg("x"), py::arg("factor"));
  m.def("patchify", [](const py::object& pixels, int64_t patch, const std::string& out_dtype) {
    const CallContext call(pixels, "pixels");
    const BorrowedView pv = call.view(pixels, "pixels");
    const TensorView& v = pv.view;
    LLAMA4_CHECK_ARG(v.ndim == 4 && patch >= 1, "patchify: 'pixels' must be 4-d [B, C, H, W] and patch >= 1, got ",
                     v.shape_str(), " and ", patch);
    const DType dt = out_dtype == "float32" ? DType::F32 : out_dtype == "bfloat16" ? DType::BF16
                     : out_dtype == "float16" ? DType::F16
                     : throw ValueError("patchify: out_dtype must be 'float32', 'bfloat16' or 'float16', got '" + out_dtype + "'");
    Tensor out = call.empty({v.size(0), (v.size(2) / patch) * (v.size(3) / patch), v.size(1) * patch * patch}, dt);
    {
      py::gil_scoped_release nogil;
      ops::patchify(call.ctx, out, v, patch);
    }
    return call.out(out);
  }, py::arg("pixels"), py::arg("patch"), py::arg("out_dtype") = "float32");
}

}  // namespace llama4::python
