"""Server overhead: requests/s and output tokens/s of `llama4-native serve` on loopback at
concurrency 1, 8 and 32, beside in-process generate() on the same prompts with the same batch limit
(continuous batching, max_batch = concurrency), measured in the same run; prints the ratios
(server / in-process; the issue's target: overhead <= 10%, i.e. ratio >= 0.90).

Every request asks for exactly --tokens new tokens (ignore_eos), so both sides do the same work.
The request count is bounded (--requests-per-slot x concurrency, at least 8; --repeat runs, the
fastest counted on both sides); traffic goes to 127.0.0.1 only.

    python benchmarks/bench_server.py [--model DIR] [--tokens 32] [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx

# `llama4-native serve` runs its OpenMP threads passive (server/serve.py says why); the in-process
# side gets the same policy, set before anything loads the OpenMP runtime, so that both sides
# run the same kernels the same way. (Set OMP_WAIT_POLICY yourself to compare another policy.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompts_for(count: int, length: int) -> list[list[int]]:
    # Distinct token-id prompts (BOS + ordinary text tokens), the same for both sides.
    return [[200000] + [1000 + (i * 37 + j * 11) % 5000 for j in range(length - 1)] for i in range(count)]


def in_process(model, prompts, tokens: int, concurrency: int) -> float:
    """generate() on a worker thread, as the server's engine loop runs the model: on a 2-core
    machine shared with other work, the same OpenMP work measured 2-3x slower from the main thread,
    which would flatter the server."""
    result = {}

    def run():
        t0 = time.perf_counter()
        outs = model.generate(input_ids=prompts, max_new_tokens=tokens, temperature=0.0, stop_token_ids=[],
                              max_batch=concurrency)
        result["dt"] = time.perf_counter() - t0
        assert all(len(o.token_ids) == tokens for o in outs)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return result["dt"]


async def over_http(url: str, name: str, prompts, tokens: int, concurrency: int) -> float:
    queue = list(prompts)
    done = 0

    async def worker(client):
        nonlocal done
        while queue:
            p = queue.pop()
            r = await client.post(url + "/v1/completions", json={
                "model": name, "prompt": p, "max_tokens": tokens, "temperature": 0, "ignore_eos": True})
            r.raise_for_status()
            assert r.json()["usage"]["completion_tokens"] == tokens
            done += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        dt = time.perf_counter() - t0
    assert done == len(prompts)
    return dt


def start_server(model_dir: str, name: str, max_seqs: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "llama4_native.cli", "serve", "--model", model_dir, "--host", "127.0.0.1",
           "--port", str(port), "--served-model-name", name, "--max-num-seqs", str(max_seqs),
           "--log-level", "warning"]
    # cwd: a neutral folder, so that `-m` does not import the source tree's (unbuilt) package
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tempfile.gettempdir())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start in 300 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: a make-tiny checkpoint)")
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per request")
    ap.add_argument("--prompt-len", type=int, default=24)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32])
    ap.add_argument("--requests-per-slot", type=int, default=2, help="requests = this x concurrency (at least 8)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts (shared machine)")
    ap.add_argument("--quick", action="store_true", help="fewer tokens and requests")
    a = ap.parse_args()
    if a.quick:
        a.tokens, a.requests_per_slot, a.repeat = 8, 1, 1
    import llama4_native as l4

    model_dir = a.model
    if model_dir is None:
        from llama4_native.tiny import make_tiny

        model_dir = make_tiny(os.path.join(tempfile.mkdtemp(prefix="bench_server_"), "tiny"), dtype="bfloat16",
                               processor_files=False)
    max_seqs = max(a.concurrency)
    runs = {c: prompts_for(max(8, a.requests_per_slot * c), a.prompt_len) for c in a.concurrency}

    # In-process first (the server is not running yet, so the two never share the CPU).
    model = l4.load(model_dir, dtype="bfloat16", max_sequences=max_seqs)
    in_process(model, runs[a.concurrency[0]][:1], 2, 1)  # warm-up
    local = {c: min(in_process(model, p, a.tokens, c) for _ in range(a.repeat)) for c, p in runs.items()}
    del model

    proc, url = start_server(model_dir, "bench", max_seqs)
    try:
        asyncio.run(over_http(url, "bench", runs[a.concurrency[0]][:1], 2, 1))  # warm-up
        remote = {c: min(asyncio.run(over_http(url, "bench", p, a.tokens, c)) for _ in range(a.repeat))
                  for c, p in runs.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    print(f"checkpoint {model_dir}; {a.tokens} new tokens per request, prompts of {a.prompt_len} tokens; "
          f"CPU threads {l4.build_info().get('cpu_threads', '?')} "
          f"(OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}); best of {a.repeat}")
    print(f"{'conc':>4} {'reqs':>5} | {'in-process req/s':>16} {'tok/s':>8} | {'server req/s':>12} {'tok/s':>8} | "
          f"{'ratio (server/in-process)':>25}")
    for c, p in runs.items():
        n, tok = len(p), len(p) * a.tokens
        lr, lt = n / local[c], tok / local[c]
        sr, st = n / remote[c], tok / remote[c]
        print(f"{c:>4} {n:>5} | {lr:>16.2f} {lt:>8.1f} | {sr:>12.2f} {st:>8.1f} | {st / lt:>25.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
