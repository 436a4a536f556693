#!/usr/bin/env bash
# The C++ core under AddressSanitizer + UndefinedBehaviorSanitizer (clang, CPU only, its own build
# folder): the C++ tests and the in-tree C++ example through CTest, then a Python subset (loading,
# generation, images through the vision tower, the scheduler under preemption, the weight check)
# against the sanitized _C module, with the ASan runtime preloaded into the interpreter. Any report
# fails the run (UBSan does not recover; ASan aborts). The same build holds the libFuzzer targets
# (fuzz/run.sh runs them).
#   .ci/sanitize.sh [BUILD_DIR, default build-asan]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-asan}
PY=${PY:-.venv/bin/python}
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute: used from other folders below
JOBS=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
generator=()
[ -f "$BUILD/CMakeCache.txt" ] || ! command -v ninja >/dev/null || generator=(-G Ninja)
CC=clang CXX=clang++ cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLLAMA4_CUDA=OFF -DLLAMA4_TOKENIZER=ON -DLLAMA4_SANITIZE=address,undefined -DLLAMA4_BUILD_FUZZERS=ON \
  -DLLAMA4_BUILD_TESTS=ON -DLLAMA4_BUILD_EXAMPLES=ON -DLLAMA4_BUILD_PYTHON=ON \
  -DPython_EXECUTABLE="$PY" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD" --parallel "$JOBS"

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd "$BUILD" && ctest --output-on-failure --timeout 900)
# The C++ examples on a real checkpoint folder (make-tiny's, written by the release package): one-call
# load + greedy decoding, and generation through the tokenizer, scheduler and sampler, batched.
# (Their outputs equal Python's: tests/test_cpp_package.py; here only the sanitizers judge.)
tiny="$PWD/$BUILD/tiny-checkpoint"
[ -f "$tiny/config.json" ] || (cd / && "$PY" -c "import sys; from llama4_native.tiny import make_tiny; \
make_tiny(sys.argv[1], dtype='float32')" "$tiny")
"$BUILD/examples/cpp/llama4_checkpoint_greedy" "$tiny" 8 200000 1003 27 4521 88
"$BUILD/examples/cpp/llama4_generate" --model "$tiny" --dtype float32 --max-new-tokens 8 --temperature 0.7 \
  --seed 1 --prompt "The llama said" --prompt "Über 3 Äpfel — und 🦙?" --chat

# The package as installed, with the sanitized module and library in place of the release ones.
pkg="$BUILD/python/llama4_native"
rm -rf "$BUILD/python" && mkdir -p "$pkg"
cp -r llama4_native/. "$pkg/"
find "$pkg" -name '*.so' -delete
cp "$BUILD"/_C*.so "$BUILD"/libllama4.so "$pkg/"
runtime=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
# The interpreter and torch are not instrumented: their own leaks are not ours to report, and
# torch's allocator frees memory its own way (alloc_dealloc_mismatch). Everything in _C is checked.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=0:alloc_dealloc_mismatch=0
# (From another folder, and the pytest script rather than `python -m pytest`: the source folder
# first on sys.path would shadow PYTHONPATH's package.)
pypath="$(cd "$BUILD/python" && pwd)"
where=$(cd / && LD_PRELOAD="$runtime" PYTHONPATH="$pypath" "$PY" -c "import llama4_native as l; print(l.__file__)")
case "$where" in "$pypath/"*) ;; *) echo "sanitize: imported $where, not the sanitized build" >&2; exit 1;; esac
LD_PRELOAD="$runtime" PYTHONPATH="$pypath" "$(dirname "$PY")/pytest" -q -p no:cacheprovider \
  tests/test_checkpoint_cpp.py tests/test_check_weights.py tests/test_generate.py tests/test_multimodal.py \
  tests/test_scheduler.py
