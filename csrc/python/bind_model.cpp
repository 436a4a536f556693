// Bindings of the model graph (text decoder, KV cache). Filled by the text-engine work.
#include "python/bindings.h"

namespace llama4::python {
void register_model(pybind11::module_& m) {}
}  // namespace llama4::python
