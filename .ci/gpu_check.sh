#!/usr/bin/env bash
# The one prepared check for the GPU machine (/work/shared/GPU.md): prints the GPU, installs the
# carried wheels (.ci/fetch_gpu_wheels.sh fetches them into .whl/), builds the package with the
# CUDA backend (timed), prints build_info(), runs the `cuda`-marked tests (every CUDA op against
# its CPU twin), runs the kernel benchmarks, and writes a compact log to $OUT/gpu_check.log when
# $OUT is set. Every step has a timeout inside one overall deadline, so the run ends within
# 7.5 minutes even when a step hangs. Exit status: 0 when the build, tests and benchmarks all passed.
#
#   bash .ci/gpu_check.sh          (on the device tool: carry [".whl"], which git ignores)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
site=${GPU_CHECK_SITE:-/tmp/site}   # the carried wheels and our package, side by side
work=$(mktemp -d /tmp/gpu_check.XXXXXX)
log=${OUT:+$OUT/gpu_check.log}
log=${log:-$work/gpu_check.log}
mkdir -p "$(dirname "$log")" && : >"$log"
start=$(date +%s)
deadline=$((start + 440))  # inside one 8-minute call, with time to copy $OUT back
failed=()

say() { printf '%s\n' "$*" | tee -a "$log"; }
section() { say ""; say "== $* (t=$(($(date +%s) - start)) s)"; }
# Seconds left for a step: at most $1, and never past the deadline.
budget() {
  local left=$((deadline - $(date +%s)))
  ((left < 5)) && left=5
  ((left < $1)) && echo "$left" || echo "$1"
}

section "GPU"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi 2>&1 | tee "$work/nvidia-smi.txt"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
    >>"$log" 2>&1
else
  say "nvidia-smi not found"
fi
say "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
  "python: $(python3 -V 2>&1)"

section "Carried wheels"
shopt -s nullglob
wheels=(.whl/*.whl)
if ((${#wheels[@]})); then
  timeout "$(budget 60)" python3 -m pip install -q --no-index --no-deps --no-compile \
    --target "$site" --upgrade "${wheels[@]}" 2>&1 | tail -5 | tee -a "$log"
  say "installed ${#wheels[@]} wheels into $site: $(basename -a "${wheels[@]}" | tr '\n' ' ')"
else
  say "no .whl/*.whl here: the build needs nvidia-cutlass and scipy-openblas32" \
    "(.ci/fetch_gpu_wheels.sh fetches them; carry .whl to the GPU machine)"
fi
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}

section "Build (LLAMA4_CUDA=ON)"
# Installed with --target next to the carried wheels: libllama4's RPATH finds
# ../scipy_openblas32/lib there, and a --target install needs no writable system site-packages.
t0=$(date +%s)
LLAMA4_CUDA=ON timeout "$(budget 200)" python3 -m pip install -v --no-build-isolation --no-deps \
  --no-compile --target "$site" --upgrade . \
  >"$work/build.log" 2>&1
rc=$?
say "build: exit $rc after $(($(date +%s) - t0)) s (log: $work/build.log)"
grep -E "warning( #[0-9]+-D)?:|error( #[0-9]+-D)?:|CMake (Warning|Error)" "$work/build.log" |
  sort -u | head -20 | tee -a "$log"
if ((rc != 0)); then
  tail -40 "$work/build.log" | tee -a "$log"
  failed+=(build)
fi

if ((rc == 0)); then
  # From a neutral folder, so the source tree's llama4_native/ does not shadow the installed one.
  cd "$work"

  section "build_info"
  timeout "$(budget 60)" python3 -c "
import json, llama4_native as l4, torch
print(json.dumps(l4.build_info(), indent=1))
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'devices', torch.cuda.device_count())
" 2>&1 | tee -a "$log"
  ((PIPESTATUS[0] == 0)) || failed+=(build_info)

  section "Tests: pytest -m cuda"
  # The expected count: every collected `cuda` test must pass here (a skip is a failure, e.g. a
  # wrongly False cuda_available() would otherwise pass with everything skipped).
  # The server's tests import fastapi/httpx/openai, which the GPU machine does not have (and they
  # hold no cuda tests): left out, or their collection errors would stop the whole run.
  select=(-m cuda -q -p no:cacheprovider --ignore-glob='*/test_server*.py')
  expected=$(timeout "$(budget 60)" python3 -m pytest "${select[@]}" --collect-only "$repo/tests" \
    2>/dev/null | grep -c '::')
  # The newest kernels and the whole model first, so that a run cut by the timeout has still
  # tested them, then every other file (named one by one: pytest would fold files into a folder
  # argument and lose the order). --durations: where the time goes, for the next session's budget.
  files=()
  for t in cuda_engine cuda_graphs linear_cutlass_cuda paged_prefill_cuda moe_fp8_cuda moe_int4_cuda \
    cuda_model_ops sampler_cuda; do
    files+=("$repo/tests/test_$t.py")
  done
  for f in "$repo"/tests/test_*.py; do
    [[ " ${files[*]} " == *" $f "* || $f == */test_server* ]] || files+=("$f")
  done
  timeout "$(budget 200)" python3 -m pytest "${select[@]}" --tb=short -rfEs --durations=15 \
    "${files[@]}" >"$work/pytest.log" 2>&1
  rc=$?
  cat "$work/pytest.log"
  # The log keeps failures and the summary, not the progress dots.
  grep -vE '^[.sFExX]+( +\[ *[0-9]+%\])?$' "$work/pytest.log" | tail -60 >>"$log"
  ((rc == 0)) || failed+=(tests)
  passed=$(grep -oE '[0-9]+ passed' "$work/pytest.log" | tail -1 | grep -oE '[0-9]+')
  skipped=$(grep -oE '[0-9]+ skipped' "$work/pytest.log" | tail -1 | grep -oE '[0-9]+')
  say "cuda tests: ${passed:-0} passed, ${skipped:-0} skipped, ${expected:-?} expected"
  if [[ "${passed:-0}" != "${expected:-x}" || "${skipped:-0}" != 0 ]]; then
    failed+=(cuda_test_count)
  fi

  section "compute-sanitizer memcheck (a few CUDA kernel tests)"
  # Out-of-bounds and misaligned accesses that a result comparison can miss: the paged gathers
  # (page faults, scattered queries, the prefill kernel's cp.async tiles) and the CUTLASS linear's
  # strided and fallback views. Small cases only: memcheck runs kernels 10-100x slower.
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  if [[ -n "$sanitizer" ]]; then
    timeout "$(budget 90)" "$sanitizer" --tool memcheck --error-exitcode 86 --print-limit 20 \
      python3 -m pytest -q -p no:cacheprovider -m cuda -x \
      -k "page_fault or missing_page or scattered or bad_sequence or row_strided or unaligned or misaligned" \
      "$repo/tests/test_paged_prefill_cuda.py" "$repo/tests/test_cuda_model_ops.py" \
      "$repo/tests/test_linear_cutlass_cuda.py" >"$work/memcheck.log" 2>&1
    rc=$?
    grep -E "ERROR SUMMARY|Invalid|passed|failed|error" "$work/memcheck.log" | tail -20 | tee -a "$log"
    if ((rc == 124)); then
      say "memcheck: timed out (no verdict)"
    elif ((rc != 0)); then
      failed+=(memcheck)
    fi
  else
    say "compute-sanitizer not found: memcheck skipped"
  fi

  section "Benchmarks"
  timeout "$(budget 120)" python3 "$repo/benchmarks/bench_kernels.py" 2>&1 | tee -a "$log"
  ((PIPESTATUS[0] == 0)) || failed+=(benchmarks)

  section "Benchmark: text model kernels (linear GB/s and TFLOP/s, decode attention GB/s vs copy, prefill attention TFLOP/s vs sdpa flash)"
  timeout "$(budget 90)" python3 "$repo/benchmarks/bench_cuda_text.py" --quick 2>&1 | tee -a "$log"
  ((PIPESTATUS[0] == 0)) || failed+=(bench_cuda_text)

  section "Benchmark: bf16 MoE grouped GEMM (TFLOP/s vs torch, Scout and Maverick expert shapes)"
  timeout "$(budget 60)" python3 "$repo/benchmarks/bench_grouped_linear.py" --quick 2>&1 | tee -a "$log"
  ((PIPESTATUS[0] == 0)) || failed+=(bench_grouped_linear)

  section "Benchmark: FP8 MoE grouped GEMM (TFLOP/s vs measured FP8 peak, decode GB/s vs copy)"
  timeout "$(budget 120)" python3 "$repo/benchmarks/bench_moe_fp8.py" --quick 2>&1 | tee -a "$log"
  ((PIPESTATUS[0] == 0)) || failed+=(bench_moe_fp8)

  section "Benchmark: INT4 MoE grouped GEMM (decode GB/s vs copy, prefill TFLOP/s vs bf16 matmul)"
  timeout "$(budget 90)" python3 "$repo/benchmarks/bench_cuda_int4.py" --quick 2>&1 | tee -a "$log"
  ((PIPESTATUS[0] == 0)) || failed+=(bench_cuda_int4)
  cd "$repo"
fi

section "Done in $(($(date +%s) - start)) s"
if ((${#failed[@]})); then
  say "FAILED: ${failed[*]}"
  exit 1
fi
say "OK"
