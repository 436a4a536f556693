// Bindings of the sampler (llama4/sampling.h): the SamplingParams class (the C++ struct; its
// validate() is the one place of the field rules), the batched sample op, and the Philox
// generator and draw of the seeding contract (for tests and for callers that want to check it).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "llama4/error.h"
#include "llama4/sampling.h"
#include "python/bindings.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

// Python numbers -> the struct's fields; wrong kinds raise ValueError naming the field, as the
// value rules do (bool is not a number here).
float as_float(const py::object& v, const char* name) {
  if (py::isinstance<py::bool_>(v) || !(py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v)))
    throw ValueError(detail::concat("SamplingParams: '", name, "' must be a number, got ",
                                    std::string(py::str(py::repr(v)))));
  return v.cast<float>();
}
int32_t as_int(const py::object& v, const char* name) {
  if (py::isinstance<py::bool_>(v) || !py::isinstance<py::int_>(v))
    throw ValueError(detail::concat("SamplingParams: '", name, "' must be an integer, got ",
                                    std::string(py::str(py::repr(v)))));
  const long long x = v.cast<long long>();
  if (x < -(1LL << 31) || x >= (1LL << 31))
    throw ValueError(detail::concat("SamplingParams: '", name, "' is out of range, got ", x));
  return int32_t(x);
}
std::optional<uint64_t> as_seed(const py::object& v) {
  if (v.is_none()) return std::nullopt;
  if (py::isinstance<py::bool_>(v) || !py::isinstance<py::int_>(v) ||
      v.attr("__lt__")(py::int_(0)).cast<bool>() ||
      v.attr("__ge__")(py::int_(1).attr("__lshift__")(64)).cast<bool>())
    throw ValueError(detail::concat("SamplingParams: 'seed' must be None or an integer in [0, 2^64), got ",
                                    std::string(py::str(py::repr(v)))));
  return v.cast<uint64_t>();
}

SamplingParams make_params(const py::object& temperature, const py::object& top_k, const py::object& top_p,
                           const py::object& min_p, const py::object& repetition_penalty,
                           const py::object& presence_penalty, const py::object& frequency_penalty,
                           const py::object& seed, const py::object& logprobs) {
  SamplingParams p;
  p.temperature = as_float(temperature, "temperature");
  p.top_k = as_int(top_k, "top_k");
  p.top_p = as_float(top_p, "top_p");
  p.min_p = as_float(min_p, "min_p");
  p.repetition_penalty = as_float(repetition_penalty, "repetition_penalty");
  p.presence_penalty = as_float(presence_penalty, "presence_penalty");
  p.frequency_penalty = as_float(frequency_penalty, "frequency_penalty");
  p.seed = as_seed(seed);
  p.logprobs = as_int(logprobs, "logprobs");
  p.validate();
  return p;
}

std::string repr(const SamplingParams& p) {
  std::ostringstream os;
  os << "SamplingParams(temperature=" << p.temperature << ", top_k=" << p.top_k << ", top_p=" << p.top_p
     << ", min_p=" << p.min_p << ", repetition_penalty=" << p.repetition_penalty
     << ", presence_penalty=" << p.presence_penalty << ", frequency_penalty=" << p.frequency_penalty
     << ", seed=";
  if (p.seed) os << *p.seed;
  else os << "None";
  os << ", logprobs=" << p.logprobs << ")";
  return os.str();
}

// Builds the batch from per-row lists: params[r] (its seed, else seeds[r]), sample and token
// indices, and the prompt / generated token ids that the penalties look at.
SamplerBatch make_batch(const std::vector<SamplingParams>& params, const std::vector<uint64_t>& seeds,
                        const std::vector<int64_t>& sample_indices,
                        const std::vector<int64_t>& token_indices,
                        const std::vector<std::vector<int32_t>>& prompts,
                        const std::vector<std::vector<int32_t>>& outputs) {
  const size_t B = params.size();
  auto check_len = [&](size_t n, const char* name) {
    LLAMA4_CHECK_ARG(n == B || n == 0, "sample: '", name, "' must have one entry per row (", B,
                     "), got ", n);
  };
  check_len(seeds.size(), "seeds");
  check_len(sample_indices.size(), "sample_indices");
  check_len(token_indices.size(), "token_indices");
  check_len(prompts.size(), "prompt_tokens");
  check_len(outputs.size(), "output_tokens");
  SamplerBatch batch;
  for (size_t r = 0; r < B; ++r) {
    const int64_t si = sample_indices.empty() ? 0 : sample_indices[r];
    LLAMA4_CHECK_ARG(si >= 0 && si < (int64_t(1) << 31), "sample: row ", r,
                     ": 'sample_index' must be in [0, 2^31), got ", si);
    const SamplerRow row = make_sampler_row(params[r], seeds.empty() ? 0 : seeds[r], int32_t(si),
                                            token_indices.empty() ? 0 : token_indices[r]);
    static const std::vector<int32_t> none;
    const auto& p = prompts.empty() ? none : prompts[r];
    const auto& g = outputs.empty() ? none : outputs[r];
    batch.add_row(row, p.data(), int64_t(p.size()), g.data(), int64_t(g.size()));
  }
  return batch;
}

py::tuple sample(const py::object& logits, const std::vector<SamplingParams>& params,
                 const std::vector<uint64_t>& seeds, const std::vector<int64_t>& sample_indices,
                 const std::vector<int64_t>& token_indices,
                 const std::vector<std::vector<int32_t>>& prompts,
                 const std::vector<std::vector<int32_t>>& outputs, int64_t num_top,
                 const py::object& workspace) {
  const BorrowedView lv = as_view(logits, "logits"), ws = as_optional_view(workspace, "workspace");
  const SamplerBatch batch = make_batch(params, seeds, sample_indices, token_indices, prompts, outputs);
  const int64_t B = lv.view.ndim >= 1 ? lv.view.size(0) : 0;
  int32_t most = 0;
  for (const SamplingParams& p : params) most = std::max(most, p.logprobs);
  const int64_t N = std::max<int64_t>(num_top, most);
  const Device dev = lv.view.device;
  Tensor tokens = Tensor::empty({B}, DType::I32, dev), status = Tensor::empty({B}, DType::I32, dev);
  Tensor lp = Tensor::empty({B}, DType::F32, dev);
  Tensor top_ids = Tensor::empty({B, N}, DType::I32, dev), top_lp = Tensor::empty({B, N}, DType::F32, dev);
  {
    py::gil_scoped_release nogil;
    ops::sample(tokens, lp, N ? top_ids.view() : TensorView{}, N ? top_lp.view() : TensorView{}, status,
                lv, batch, ws);
  }
  return py::make_tuple(to_python(tokens), to_python(lp), to_python(top_ids), to_python(top_lp),
                        to_python(status));
}

}  // namespace

void register_sampling(py::module_& m) {
  py::class_<SamplingParams>(m, "SamplingParams",
                             "Per-request sampling parameters (vLLM's names); invalid values raise "
                             "ValueError naming the field.")
      .def(py::init(&make_params), py::kw_only(), py::arg("temperature") = 0.0, py::arg("top_k") = 0,
           py::arg("top_p") = 1.0, py::arg("min_p") = 0.0, py::arg("repetition_penalty") = 1.0,
           py::arg("presence_penalty") = 0.0, py::arg("frequency_penalty") = 0.0,
           py::arg("seed") = py::none(), py::arg("logprobs") = -1)
      .def_readonly("temperature", &SamplingParams::temperature)
      .def_readonly("top_k", &SamplingParams::top_k)
      .def_readonly("top_p", &SamplingParams::top_p)
      .def_readonly("min_p", &SamplingParams::min_p)
      .def_readonly("repetition_penalty", &SamplingParams::repetition_penalty)
      .def_readonly("presence_penalty", &SamplingParams::presence_penalty)
      .def_readonly("frequency_penalty", &SamplingParams::frequency_penalty)
      .def_readonly("seed", &SamplingParams::seed)
      .def_readonly("logprobs", &SamplingParams::logprobs)
      .def_property_readonly("greedy", &SamplingParams::greedy)
      .def("__repr__", &repr);

  m.def("sample", &sample, py::arg("logits"), py::arg("params"), py::arg("seeds"),
        py::arg("sample_indices"), py::arg("token_indices"), py::arg("prompt_tokens"),
        py::arg("output_tokens"), py::arg("num_top"), py::arg("workspace") = py::none(),
        "Batched sampling -> (tokens, logprobs, top_ids, top_logprobs, status) on logits' device.");
  m.def("sample_workspace_bytes",
        [](const py::object& logits, const std::vector<SamplingParams>& params,
           const std::vector<std::vector<int32_t>>& prompts, const std::vector<std::vector<int32_t>>& outputs) {
          const BorrowedView lv = as_view(logits, "logits");
          const SamplerBatch b = make_batch(params, {}, {}, {}, prompts, outputs);
          return ops::sample_workspace_bytes(lv.view.device, lv.view.ndim == 2 ? lv.view.size(1) : 1, b);
        },
        py::arg("logits"), py::arg("params"), py::arg("prompt_tokens"), py::arg("output_tokens"));
  m.def("sample_status_message", &sample_status_message, py::arg("status"));
  m.def("philox4x32_10",
        [](const std::vector<uint32_t>& counter, const std::vector<uint32_t>& key) {
          LLAMA4_CHECK_ARG(counter.size() == 4 && key.size() == 2,
                           "philox4x32_10: needs 4 counter words and 2 key words");
          const Philox4x32 r = philox4x32_10(Philox4x32{{counter[0], counter[1], counter[2], counter[3]}},
                                             key[0], key[1]);
          return std::vector<uint32_t>{r.v[0], r.v[1], r.v[2], r.v[3]};
        },
        py::arg("counter"), py::arg("key"));
  m.def("sampler_draw_bits", &sampler_draw_bits, py::arg("seed"), py::arg("sample_index"),
        py::arg("token_index"));
}

}  // namespace llama4::python
