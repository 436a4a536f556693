#!/usr/bin/env bash
# Downloads into .whl/ (gitignored) the wheels that the offline GPU machine lacks, for
# .ci/gpu_check.sh to install there:
#   nvidia-cutlass 4.2.0.0   CUTLASS headers for the CUDA build (pure Python)
#   llama-models 0.3.0       Llama 4 reference code and tokenizer model (pure Python)
#   tiktoken                 the tokenizer's BPE engine (binary: CPython 3.12, manylinux x86_64)
#   scipy-openblas32         the BLAS that CMake links the CPU matmuls against (binary, same tags)
# Run it here, where a package registry is reachable; override versions with TIKTOKEN_SPEC or
# OPENBLAS_SPEC (e.g. TIKTOKEN_SPEC='==0.9.0').
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.whl
py=${PYTHON:-python3}
mkdir -p "$dest"
# One version per package: gpu_check installs .whl/*.whl, and two versions of one name would clash.
rm -f "$dest"/nvidia_cutlass-*.whl "$dest"/llama_models-*.whl "$dest"/tiktoken-*.whl \
      "$dest"/scipy_openblas32-*.whl

"$py" -m pip download -q --no-deps --only-binary=:all: -d "$dest" \
  nvidia-cutlass==4.2.0.0 llama-models==0.3.0
"$py" -m pip download -q --no-deps --only-binary=:all: -d "$dest" \
  --implementation cp --python-version 3.12 --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 \
  "tiktoken${TIKTOKEN_SPEC:-}" "scipy-openblas32${OPENBLAS_SPEC:->=0.3.27}"
ls -l "$dest"
