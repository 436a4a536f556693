// Registration functions of the module's parts, one per binding file.
#pragma once
#include <pybind11/pybind11.h>

#include "llama4/config.h"
#include "llama4/vision.h"

namespace llama4::python {
void register_ops(pybind11::module_& m);    // bind_ops.cpp
void register_model(pybind11::module_& m);  // bind_model.cpp
void register_attention(pybind11::module_& m);  // bind_attention.cpp (KV cache, paged attention)
void register_moe(pybind11::module_& m);        // bind_moe.cpp (FP8 MoE ops)
void register_moe_int4(pybind11::module_& m);   // bind_moe_int4.cpp (INT4 MoE ops)
void register_moe_int4_kernels(pybind11::module_& m);  // bind_moe_int4_kernels.cpp (its CUDA kernels)
void register_vision(pybind11::module_& m);  // bind_vision.cpp (vision tower, its ops, early fusion)
void register_sampling(pybind11::module_& m);  // bind_sampling.cpp (SamplingParams, sample, Philox)
void register_scheduler(pybind11::module_& m);  // bind_scheduler.cpp (continuous batching, sampling)
void register_text(pybind11::module_& m);    // bind_text.cpp (C++ tokenizer and chat format)
void register_config(pybind11::module_& m);      // bind_config.cpp (config structs and parsers)
void register_checkpoint(pybind11::module_& m);  // bind_checkpoint.cpp (safetensors, weight loading)
void register_plan(pybind11::module_& m);        // bind_plan.cpp (the memory planner's shared formulas)
void register_parallel(pybind11::module_& m);    // bind_parallel.cpp (communicators, RankError)

// A bound TextConfig / VisionConfig, or the engine's plain dict of one (bind_config.cpp).
TextConfig text_config_from_py(const pybind11::handle& config);
VisionConfig vision_config_from_py(const pybind11::handle& config);
}  // namespace llama4::python
