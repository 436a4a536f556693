// The Python-side owner of an Engine (shared by the engine and scheduler bindings).
#pragma once
#include <memory>

#include <pybind11/pybind11.h>

#include "llama4/engine.h"

namespace llama4::python {

struct PyEngine {
  pybind11::dict weight_objects;  // keeps the weight memory alive
  std::unique_ptr<Engine> engine;
};

}  // namespace llama4::python
