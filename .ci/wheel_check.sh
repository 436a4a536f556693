#!/usr/bin/env bash
# The wheel a user installs: `pip wheel .` (the CUDA backend included wherever nvcc is found),
# installed with its declared dependencies into a fresh virtual environment (no system packages,
# not the development .venv), must import and generate on the CPU of a machine without a GPU
# driver; build_info() must list the CUDA backend and its architectures when nvcc built it.
#
#   .ci/wheel_check.sh [VENV]     (VENV: the development venv with the build requirements, .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
dev=${1:-.venv}
work=$(mktemp -d /tmp/wheel_check.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The build folder of `make setup` is reused (pyproject's build-dir), so this is incremental.
"$dev/bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/llama4_native-*.whl)
echo "wheel: $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade "pip>=23"
# The declared dependencies only (torch pinned as the development venv has it, so pip's cache serves it).
"$work/venv/bin/python" -m pip install -q "$wheel" "torch==$("$dev/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
want_cuda=0
command -v nvcc >/dev/null && [ "${LLAMA4_CUDA:-AUTO}" != OFF ] && want_cuda=1
cd "$work"  # not the source tree, whose llama4_native/ would shadow the installed one
WANT_CUDA=$want_cuda "$work/venv/bin/python" - <<'PY'
import os
import llama4_native as l4
from llama4_native.tiny import make_tiny

info = l4.build_info()
print("build_info:", {k: info[k] for k in ("backends", "cuda_archs", "cutlass_version", "blas") if k in info})
if os.environ["WANT_CUDA"] == "1":
    assert "cuda" in info["backends"], f"nvcc is here but the wheel has no CUDA backend: {info}"
    archs = info.get("cuda_archs", "").split(";")
    assert "90a-real" in archs, f"the wheel lacks sm_90a: {info}"
    assert len(set(archs)) == len(archs), f"build_info lists an arch twice: {archs}"
has_driver = os.path.exists("/dev/nvidiactl")
print("GPU driver present:", has_driver, "; cuda_available():", l4.cuda_available())
if not has_driver:
    assert not l4.cuda_available()
folder = make_tiny("tiny", processor_files=False)
model = l4.load(folder)
out = model.generate([1, 2, 3, 4], max_new_tokens=8)
assert len(out.token_ids) == 8, out
print("generated on the CPU from the installed wheel:", out.token_ids)
PY
echo "wheel check: OK"
