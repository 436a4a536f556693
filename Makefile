# Set-up and the two everyday commands. Everything installs into .venv from PyPI (no hub, no
# hand-installed packages):
#   make demo   set up, then generate with the small built-in checkpoint
#   make test   set up, then run every test (Python, kernels, C++ via CTest, the CMake package)
#   make sanitize  the C++ core under ASan + UBSan (clang, build-asan/): C++ tests, example, Python subset
#   make fuzz      sanitize, then every fuzz target for FUZZ_SECONDS each on its seed corpus (fuzz/)
#   make wheel-check  `pip wheel .` in a fresh venv: imports and generates on a machine without a GPU driver
PY       ?= python3
VENV     ?= .venv
VPY      := $(VENV)/bin/python
# The CUDA backend is built whenever nvcc is found (compile-only on machines without a GPU).
LLAMA4_CUDA ?= AUTO
export LLAMA4_CUDA

ASAN_BUILD   ?= build-asan
FUZZ_SECONDS ?= 15

.PHONY: setup demo test sanitize fuzz wheel-check bench clean

$(VPY):
	$(PY) -m venv $(VENV)

# Build requirements are installed first so the package builds without isolation (it finds the
# CUTLASS headers and OpenBLAS in the venv); torch/transformers are the test references. The server
# (`serve`) needs fastapi, uvicorn, prometheus-client and httpx; its tests drive it with the official
# openai client and the chat page with selenium (the browser itself: .ci/system-packages).
setup: $(VPY)
	$(VPY) -m pip install -q --upgrade "pip>=23"
	$(VPY) -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" "scipy-openblas32>=0.3.27" \
	    "numpy>=1.24" "safetensors>=0.4" tiktoken pillow "torch==2.13.0" "transformers==5.23.0" "pytest>=8"
	$(VPY) -m pip install -q "fastapi==0.163.2" "uvicorn==0.54.0" "prometheus-client==0.26.0" "httpx==0.28.1" \
	    "openai==3.51.0" "selenium==4.45.0"
	$(VPY) -m pip install -q "atheris==3.0.0"  # the Python fuzz targets (fuzz/python)
	$(VPY) -m pip install -q "compressed-tensors==0.20.1"  # the INT4 tests' pack-quantized checkpoints
	$(VPY) -m pip install -q --no-deps nvidia-cutlass==4.2.0.0 llama-models==0.3.0 nlohmann-json==3.12.0
	$(VPY) -m pip install -q --no-build-isolation --no-deps .

demo: setup
	$(VENV)/bin/llama4-native demo

# The pytest script, not `python -m pytest`: the latter puts the source folder first on sys.path,
# which would shadow the installed (compiled) package.
test: setup
	$(VENV)/bin/pytest -q tests

# clang, libFuzzer and the sanitizer runtimes come from .ci/system-packages.
sanitize: setup
	.ci/sanitize.sh $(ASAN_BUILD)

fuzz: sanitize
	fuzz/run.sh $(ASAN_BUILD) $(FUZZ_SECONDS)

# The wheel users install, in a fresh venv (its declared dependencies only), without a GPU driver.
wheel-check: setup
	.ci/wheel_check.sh $(VENV)

bench: setup
	$(VPY) benchmarks/bench_text.py

clean:
	rm -rf build $(ASAN_BUILD) $(VENV)
