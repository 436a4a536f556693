#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: the libFuzzer targets of a build with
# LLAMA4_BUILD_FUZZERS=ON (fuzz/cpp, under ASan + UBSan) and the atheris targets (fuzz/python,
# against the installed package), each first over its committed seed corpus fuzz/corpus/<target>/
# (every file there once: the regression run), then for SECONDS of new inputs.
#   fuzz/run.sh BUILD_DIR [SECONDS per target, default 15]
# New inputs go to a scratch corpus, not into fuzz/corpus; a failure leaves the input in
# $BUILD_DIR/fuzz-artifacts/ (reproduce: BUILD_DIR/fuzz/cpp/<target> FILE, or
# python fuzz/python/<target>.py FILE), and it joins fuzz/corpus/<target>/ once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:?usage: fuzz/run.sh BUILD_DIR [SECONDS]}
SECONDS_EACH=${2:-15}
PY=${PY:-.venv/bin/python}
ARTIFACTS="$BUILD/fuzz-artifacts"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/llama4_fuzz_run_XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$ARTIFACTS"
export TMPDIR="$SCRATCH"  # the targets' scratch files die with this run
# The tokenizer targets read Llama 4's tokenizer.model from the llama-models package (found without
# importing llama4_native: from the repository root that would be the source folder, not the build).
LLAMA4_TOKENIZER_MODEL=$("$PY" -c "import importlib.util as u, os; s = u.find_spec('llama_models'); \
print(os.path.join(list(s.submodule_search_locations)[0], 'llama4', 'tokenizer.model'))")
export LLAMA4_TOKENIZER_MODEL
# Leaks are errors for the C++ targets (each input must free what it allocated); UBSan stops at once.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary=()
run_target() {  # name, command...
  local name=$1; shift
  local seeds="fuzz/corpus/$name" work="$SCRATCH/corpus-$name" log="$SCRATCH/$name.log"
  mkdir -p "$work" "$seeds"
  local start=$SECONDS
  if ! "$@" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=3072 \
       -artifact_prefix="$ARTIFACTS/$name-" -print_final_stats=1 "$work" "$seeds" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $name FAILED (input saved under $ARTIFACTS/)" >&2
    exit 1
  fi
  local runs
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  summary+=("$name: ${runs:-?} inputs in $((SECONDS - start)) s, $(ls "$seeds" | wc -l) seeds")
}

for target in fuzz_safetensors fuzz_index fuzz_config fuzz_tokenizer fuzz_chat; do
  bin="$BUILD/fuzz/cpp/$target"
  [ -x "$bin" ] || { echo "fuzz: $bin is missing (configure with -DLLAMA4_BUILD_FUZZERS=ON)" >&2; exit 1; }
  run_target "$target" "$bin"
done
# Python: leaks and the interpreter's own allocations are not ours to judge; atheris reports any
# uncaught exception (an untyped error) with the input.
for target in fuzz_image fuzz_chat_py fuzz_http; do
  run_target "$target" "$PY" "fuzz/python/$target.py"
done
printf 'fuzz: %s\n' "${summary[@]}"
echo "fuzz: ${#summary[@]} passed, 0 failed"  # one line per target above
