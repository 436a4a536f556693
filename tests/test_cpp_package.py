# The C++ side end to end, as a C++ developer meets it: a CPU-only CMake build of the repo with the
# C++ tests and the in-tree example (kept in build/cpp-tests between runs, so reruns only rebuild
# what changed), its CTest suite, `cmake --install` into a temporary prefix (only the public headers,
# a library that finds its BLAS through its RPATH), and examples/cpp built as a separate project
# against that installed package through find_package(llama4_native), then run.
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "cpp-tests"
JOBS = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")  # the dev machines are shared: -j2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("ctest") is None,
                       reason="needs cmake and ctest on PATH"),
]


def run(*cmd, cwd=None) -> str:
    """Run a command; on failure show its output (the end of it, where the error is)."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        command = " ".join(map(str, cmd))
        raise AssertionError(f"{command} exited {proc.returncode}:\n{proc.stdout[-6000:]}")
    return proc.stdout


def generator_args(build_dir: Path) -> list[str]:
    # Ninja when available; an existing cache keeps whatever generator it was made with.
    if (build_dir / "CMakeCache.txt").exists() or shutil.which("ninja") is None:
        return []
    return ["-G", "Ninja"]


def cache_value(build_dir: Path, key: str) -> str:
    text = (build_dir / "CMakeCache.txt").read_text()
    match = re.search(rf"^{re.escape(key)}:[A-Z]+=(.*)$", text, re.M)
    return match.group(1) if match else ""


@pytest.fixture(scope="module")
def built() -> Path:
    """Configure (or reconfigure) and build the persistent CPU-only tree."""
    run("cmake", "-S", ROOT, "-B", BUILD, *generator_args(BUILD),
        "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA4_CUDA=OFF", "-DLLAMA4_BUILD_TESTS=ON",
        "-DLLAMA4_BUILD_PYTHON=OFF", "-DLLAMA4_BUILD_EXAMPLES=ON",
        f"-DPython_EXECUTABLE={sys.executable}")  # the interpreter that has scipy-openblas32
    run("cmake", "--build", BUILD, "--parallel", JOBS)
    return BUILD


@pytest.fixture(scope="module")
def prefix(built, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("llama4-prefix")
    run("cmake", "--install", built, "--prefix", dest)
    return dest


def test_ctest(built):
    """Every tests/cpp/test_*.cpp and the in-tree example are registered, and all pass."""
    out = run("ctest", "--output-on-failure", "--timeout", "120", cwd=built)
    names = set(re.findall(r"Test\s+#\d+: (\S+) \.+\s+Passed", out))
    expected = {p.stem for p in (ROOT / "tests" / "cpp").glob("test_*.cpp")} | {"example_cpp"}
    assert expected <= names, f"not run or not passed: {sorted(expected - names)}\n{out}"
    assert "100% tests passed" in out


def test_only_public_headers_are_installed(prefix):
    public = {f"llama4/{p.name}" for p in (ROOT / "csrc" / "include" / "llama4").glob("*.h")}
    installed = {p.relative_to(prefix / "include").as_posix()
                 for p in (prefix / "include").rglob("*") if p.is_file()}
    assert installed == public
    # Nothing else leaks into the prefix: the library and its CMake package, no private headers,
    # no generated build config, no test binaries.
    others = sorted(p.relative_to(prefix).as_posix() for p in prefix.rglob("*")
                    if p.is_file() and not p.relative_to(prefix).as_posix().startswith("include/"))
    allowed = r"lib(64)?/(libllama4\.so|cmake/llama4_native/llama4_native[\w-]*\.cmake)"
    assert all(re.fullmatch(allowed, f) for f in others), others
    for header in public:  # public headers include only public headers (or the standard library)
        for inc in re.findall(r'#include\s+"([^"]+)"', (prefix / "include" / header).read_text()):
            assert inc in public, f"{header} includes non-public {inc}"


@pytest.mark.skipif(shutil.which("readelf") is None or shutil.which("ldd") is None,
                    reason="needs readelf and ldd")
def test_installed_library_finds_its_dependencies(prefix):
    lib = next(prefix.glob("lib*/libllama4.so"))
    dynamic = run("readelf", "-d", lib)
    match = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", dynamic)
    assert match, dynamic
    search_path = match.group(1).split(":")
    assert "$ORIGIN" in search_path
    try:  # cmake/Llama4Blas.cmake prefers the scipy-openblas32 wheel of the configuring Python
        import scipy_openblas32
    except ImportError:
        scipy_openblas32 = None  # a system OpenBLAS is on the loader's default path anyway
    if scipy_openblas32 is not None:
        blas_dir = str(Path(scipy_openblas32.get_lib_dir()))
        assert blas_dir in search_path, f"BLAS dir {blas_dir} not in the RUNPATH {search_path}"
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}  # only what RPATH gives
    linked = subprocess.run(["ldd", str(lib)], stdout=subprocess.PIPE, text=True, env=env).stdout
    assert "not found" not in linked, linked


@pytest.fixture(scope="module")
def example_build(prefix, tmp_path_factory) -> Path:
    """examples/cpp built as a separate project against the installed package."""
    example_build = tmp_path_factory.mktemp("example-build")
    run("cmake", "-S", ROOT / "examples" / "cpp", "-B", example_build, *generator_args(example_build),
        "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}",
        "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF")  # this prefix, not some other registered build
    found = Path(cache_value(example_build, "llama4_native_DIR")).resolve()
    assert found.is_relative_to(prefix.resolve()), f"find_package picked {found}, not {prefix}"
    run("cmake", "--build", example_build, "--parallel", JOBS)
    return example_build


def test_example_against_installed_package(example_build):
    exe = example_build / "llama4_example"
    proc = subprocess.run([str(exe)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout
    out = proc.stdout
    assert re.search(r"^llama4_native 0\.1\.\d+$", out, re.M), out
    assert re.search(r"^backends: cpu\b", out, re.M), out
    assert "cuda available: no" in out or "cuda" in re.search(r"^backends:.*$", out, re.M).group(0)
    assert "rms_norm: 0.516398 -2.065591 0.774597 -0.516398 1.000000 2.000000 0.500000 1.000000" in out
    assert "quantize_fp8: q = 0x6E 0xF6 0x7E scale = 0.00892857183 dequantized = 1 -2 4" in out
    # The engine embedded from C++: a batched step equals each sequence run alone.
    m = re.search(r"^engine: 2-layer random model, batched vs alone max \|dlogit\| = (\S+)", out, re.M)
    assert m and float(m.group(1)) <= 1e-5, out
    assert "all results correct" in out


def test_checkpoint_example_matches_python(example_build, tmp_path):
    """A C++ application loads a checkpoint folder with one call (llama4::load_checkpoint) and
    decodes greedily: the same tokens as Python's generate() on the same checkpoint."""
    import llama4_native
    from llama4_native.tiny import make_tiny

    folder = make_tiny(tmp_path / "tiny", dtype="bfloat16", seed=3, processor_files=False)
    prompt, n = [200000, 1003, 27, 4521, 88, 2001, 9, 640], 12
    exe = example_build / "llama4_checkpoint_greedy"
    proc = subprocess.run([str(exe), folder, str(n), *map(str, prompt)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "Llama4ForConditionalGeneration" in proc.stdout, proc.stdout
    cpp_tokens = [int(t) for t in re.search(r"^greedy:(.*)$", proc.stdout, re.M).group(1).split()]
    model = llama4_native.load(folder, dtype="bfloat16")
    py_tokens = model.generate(prompt, max_new_tokens=n, temperature=0, stop_token_ids=[]).token_ids
    assert len(cpp_tokens) == n and cpp_tokens == py_tokens, (cpp_tokens, py_tokens)
    assert len(set(cpp_tokens)) > 1, cpp_tokens  # a model that decodes something, not one constant

    # A corrupt checkpoint: a clear error naming the file, exit status 3, no crash.
    weights = Path(folder) / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    proc = subprocess.run([str(exe), folder, "1", "1"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 3, proc.stdout
    assert "checkpoint error" in proc.stdout and str(weights) in proc.stdout, proc.stdout


def test_generate_example_equals_python(example_build, tmp_path):
    """examples/cpp/generate.cpp (C++ loader, tokenizer, scheduler, sampler) gives the greedy tokens
    and text of Python's generate() on the same checkpoint, alone and batched."""
    import llama4_native as l4
    from llama4_native.tiny import make_tiny

    exe = example_build / "llama4_generate"
    ckpt = make_tiny(tmp_path / "tiny", dtype="float32", processor_files=False)
    prompts = ["The llama said", "Über 3 Äpfel — und 🦙?"]
    model = l4.load(ckpt, dtype="float32")
    want = model.generate(prompts, max_new_tokens=12, temperature=0.0)

    def cpp(*args):
        proc = subprocess.run([str(exe), "--model", str(ckpt), "--dtype", "float32", "--temperature", "0",
                               "--max-new-tokens", "12", "--print-ids", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 0, proc.stderr
        ids = {int(m.group(1)): [int(t) for t in m.group(2).split()]
               for m in re.finditer(r"^ids (\d+):(.*)$", proc.stdout, re.M)}
        return proc.stdout, ids

    out, ids = cpp("--prompt", prompts[0])  # one prompt: its text streamed, then a newline
    assert ids == {0: want[0].token_ids}
    assert out.startswith(want[0].text + "\n"), (out, want[0].text)

    out, ids = cpp("--prompt", prompts[0], "--prompt", prompts[1])  # served together
    assert ids == {0: want[0].token_ids, 1: want[1].token_ids}
    for i, w in enumerate(want):
        assert f"--- prompt {i} ({w.finish_reason})\n{w.text}\n" in out, (out, w.text)

    # A bad flag fails before the weights are read, naming the parameter.
    proc = subprocess.run([str(exe), "--model", str(ckpt), "--prompt", "x", "--top-p", "3"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1 and "top_p" in proc.stderr, proc.stderr
