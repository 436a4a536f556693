// Bindings of the serving loop: _C.Scheduler(engine, max_batch=0, max_step_tokens=0).
//   add_request(prompt, *, image_features=None, max_new_tokens, stop_token_ids=(), n=1,
//               return_logits=False, <sampling parameters>) -> request id
//   step() -> [(request_id, sample, tokens, logprobs, logits, finish_reason, error), ...]
//     logprobs: None or [(logprob, top_ids, top_logprobs)] per token; logits: None or [k, V] f32
//   cancel(id) -> bool, has_unfinished(), stats() -> dict
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>

#include "llama4/error.h"
#include "llama4/ops.h"
#include "llama4/scheduler.h"
#include "python/bindings.h"
#include "python/py_engine.h"
#include "python/tensor_bridge.h"

namespace llama4::python {

namespace {

struct PyScheduler {
  std::unique_ptr<Scheduler> scheduler;
};

// A Python sequence of ints -> int32 ids; values of any width are range-checked here so that the
// error names the argument (pybind's own cast would say "Unable to cast").
std::vector<int32_t> token_ids(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw TypeError(detail::concat(name, " must be a sequence of integer token ids, got ",
                                   std::string(py::str(obj.get_type().attr("__name__")))));
  std::vector<int32_t> out;
  const auto seq = py::reinterpret_borrow<py::sequence>(obj);
  out.reserve(seq.size());
  for (size_t i = 0; i < seq.size(); ++i) {
    const py::handle item = seq[i];
    if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item))
      throw TypeError(detail::concat(name, "[", i, "] must be an integer token id, got ",
                                     std::string(py::repr(item))));
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(item.ptr(), &overflow);
    if (overflow != 0 || v < 0 || v > std::numeric_limits<int32_t>::max())
      throw ValueError(detail::concat(name, "[", i, "] = ", std::string(py::str(item)),
                                      " is not a token id (ids are in [0, vocab_size))"));
    out.push_back(int32_t(v));
  }
  return out;
}

int64_t add_request(PyScheduler& self, const py::handle& prompt, const py::object& image_features,
                    int64_t max_new_tokens, const py::handle& stop_token_ids, int32_t n, bool return_logits,
                    float temperature, int32_t top_k, float top_p, float min_p, float repetition_penalty,
                    float presence_penalty, float frequency_penalty, const py::object& seed, int32_t logprobs) {
  GenerationRequest r;
  r.prompt = token_ids(prompt, "prompt");
  r.stop_token_ids = token_ids(stop_token_ids, "stop_token_ids");
  if (!image_features.is_none()) {
    const BorrowedView f = as_view(image_features, "image_features");
    r.image_features = ops::contiguous(f.view);  // owned: preempted sequences prefill again
  }
  r.max_new_tokens = max_new_tokens;
  r.n = n;
  r.return_logits = return_logits;
  SamplingParams& p = r.sampling;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repetition_penalty = repetition_penalty;
  p.presence_penalty = presence_penalty;
  p.frequency_penalty = frequency_penalty;
  p.logprobs = logprobs;
  if (!seed.is_none()) {
    if (!py::isinstance<py::int_>(seed) || py::isinstance<py::bool_>(seed))
      throw TypeError(detail::concat("seed must be an integer, got ", std::string(py::repr(seed))));
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(seed.ptr(), &overflow);
    if (overflow != 0 || v < 0) {  // a 64-bit unsigned seed: take the low 64 bits of any int >= 0
      if (py::int_(seed) < py::int_(0)) throw ValueError("seed must be >= 0, got " + std::string(py::str(seed)));
      p.seed = uint64_t(PyLong_AsUnsignedLongLongMask(seed.ptr()));
    } else {
      p.seed = uint64_t(v);
    }
  }
  return self.scheduler->add_request(std::move(r));
}

py::list step(PyScheduler& self) {
  std::vector<SampleOutput> outs;
  {
    py::gil_scoped_release nogil;
    outs = self.scheduler->step();
  }
  py::list result;
  for (SampleOutput& o : outs) {
    py::object logprobs = py::none();
    if (!o.logprobs.empty()) {
      py::list lp;
      for (const TokenLogprobs& t : o.logprobs) lp.append(py::make_tuple(t.logprob, t.top_ids, t.top_logprobs));
      logprobs = lp;
    }
    py::object logits = o.logits.defined() && o.logits.numel() > 0 ? to_python(o.logits, Context::on(o.logits.device())) : py::none();
    result.append(py::make_tuple(o.request_id, o.sample, o.tokens, logprobs, logits,
                                 finish_reason_name(o.finish), o.error));
  }
  return result;
}

}  // namespace

void register_scheduler(py::module_& m) {
  py::class_<PyScheduler>(m, "Scheduler", "Continuous batching on an Engine (llama4/scheduler.h)")
      .def(py::init([](PyEngine& engine, int64_t max_batch, int64_t max_step_tokens) {
             SchedulerOptions o;
             o.max_batch = max_batch;
             o.max_step_tokens = max_step_tokens;
             return PyScheduler{std::make_unique<Scheduler>(*engine.engine, o)};
           }),
           py::arg("engine"), py::arg("max_batch") = 0, py::arg("max_step_tokens") = 0,
           py::keep_alive<1, 2>())
      .def("add_request", &add_request, py::arg("prompt"), py::kw_only(), py::arg("image_features") = py::none(),
           py::arg("max_new_tokens") = 16, py::arg("stop_token_ids") = py::tuple(), py::arg("n") = 1,
           py::arg("return_logits") = false, py::arg("temperature") = 0.f, py::arg("top_k") = 0,
           py::arg("top_p") = 1.f, py::arg("min_p") = 0.f, py::arg("repetition_penalty") = 1.f,
           py::arg("presence_penalty") = 0.f, py::arg("frequency_penalty") = 0.f, py::arg("seed") = py::none(),
           py::arg("logprobs") = -1)
      .def("step", &step)
      .def("cancel", [](PyScheduler& s, int64_t id, int32_t sample) { return s.scheduler->cancel(id, sample); },
           py::arg("request_id"), py::arg("sample") = -1)
      .def("has_unfinished", [](PyScheduler& s) { return s.scheduler->has_unfinished(); })
      .def("stats", [](PyScheduler& s) {
        const SchedulerStats st = s.scheduler->stats();
        py::dict d;
        d["waiting"] = st.waiting;
        d["running"] = st.running;
        d["preemptions"] = st.preemptions;
        d["steps"] = st.steps;
        d["computed_tokens"] = st.computed_tokens;
        d["generated_tokens"] = st.generated_tokens;
        return d;
      });
}

}  // namespace llama4::python
