"""The `serve` subcommand: vLLM's flag names; every argument is checked before the model loads."""
from __future__ import annotations

import argparse
import os
import sys

# The engine loop thread gets the GIL back after each step (C++, GIL released) while the HTTP thread
# may be holding it; Python's default 5 ms switch interval would add up to 5 ms to every step.
SWITCH_INTERVAL_S = 0.0005


def reexec_with_passive_openmp() -> None:
    """Restart this process with OMP_WAIT_POLICY=PASSIVE unless the variable is set.

    The server runs threads beside the engine's OpenMP team (the event loop, the event relay);
    OpenMP threads that spin while idle take the cores those need, and every step then waits on a
    preempted worker: on 2 cores bench_server measured the server at 0.08 of in-process generate
    with spinning threads and 1.25 with passive ones. The policy is read once, when the OpenMP
    runtime loads - already done by the time a command runs - hence the restart."""
    if "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "llama4_native.cli", *sys.argv[1:]])


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server with a web chat page at /")
    p.add_argument("--model", required=True,
                   help="checkpoint folder (Hugging Face layout), or a model id in the local Hugging Face cache")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("LLAMA4_NATIVE_API_KEY"),
                   help="clients must send 'Authorization: Bearer KEY' (default: $LLAMA4_NATIVE_API_KEY)")
    p.add_argument("--served-model-name", default=None, help="the model id clients use (default: --model)")
    p.add_argument("--max-model-len", type=int, default=None,
                   help="prompt + new tokens per request (default: the config's max_position_embeddings)")
    p.add_argument("--max-num-seqs", type=int, default=16, help="sequences running at once")
    p.add_argument("--max-waiting", type=int, default=64,
                   help="requests queued beyond --max-num-seqs; more get 503 with Retry-After")
    p.add_argument("--kv-cache-bytes", type=int, default=None, help="KV cache budget in bytes")
    p.add_argument("--gpu-memory-utilization", type=float, default=None,
                   help="fraction of GPU memory for the model and KV cache (--device cuda)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--quantization", default=None, choices=["fp8", "int4"])
    p.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8"],
                   help="fp8: e4m3 KV cache with a scale per token and head (~1.94x the tokens)")
    p.add_argument("--tensor-parallel-size", "-tp", type=int, default=1,
                   help="ranks (processes; one GPU each with --device cuda) the model is split over; "
                        "serve starts the others itself")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--enforce-eager", action="store_true",
                   help="--device cuda: run decode steps without CUDA graphs (same results, more launch overhead)")
    p.add_argument("--allowed-media-domains", nargs="*", default=[],
                   help="host names whose http(s) image URLs may be fetched")
    p.add_argument("--allow-private-media", action="store_true",
                   help="let image URLs reach loopback and private addresses (off: refused)")
    p.add_argument("--allowed-local-media-path", default=None, help="file:// image URLs are read under this folder")
    p.add_argument("--max-media-bytes", type=int, default=20 << 20)
    p.add_argument("--max-request-bytes", type=int, default=64 << 20,
                   help="request bodies larger than this are refused with 413")
    p.add_argument("--media-timeout", type=float, default=10.0, help="seconds per fetched image")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(fn=cmd_serve)


def check_args(a) -> None:
    """ValueError naming the flag; runs before anything loads."""
    from ..hf_cache import resolve_model

    try:
        a.model_dir = resolve_model(a.model)
    except FileNotFoundError as e:
        raise ValueError(f"--model: {e}") from None
    if not os.path.isdir(a.model_dir):
        raise ValueError(f"--model: {a.model!r} is not a checkpoint folder")
    if not 0 <= a.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {a.port}")
    for flag, v in (("--max-model-len", a.max_model_len), ("--kv-cache-bytes", a.kv_cache_bytes),
                    ("--threads", a.threads), ("--max-media-bytes", a.max_media_bytes),
                    ("--max-request-bytes", a.max_request_bytes)):
        if v is not None and v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    if a.max_num_seqs < 1:
        raise ValueError(f"--max-num-seqs must be >= 1, got {a.max_num_seqs}")
    if a.tensor_parallel_size < 1:
        raise ValueError(f"--tensor-parallel-size must be >= 1, got {a.tensor_parallel_size}")
    if a.tensor_parallel_size > 1:  # a config that cannot be split fails before anything loads
        from ..parallel import check_shardable

        check_shardable(a.model_dir, a.tensor_parallel_size, a.dtype)
    if a.max_waiting < 0:
        raise ValueError(f"--max-waiting must be >= 0, got {a.max_waiting}")
    if not a.media_timeout > 0:
        raise ValueError(f"--media-timeout must be > 0, got {a.media_timeout}")
    if a.gpu_memory_utilization is not None:  # load()'s rules, checked before loading
        from ..gpu_memory import check_utilization

        check_utilization(a.gpu_memory_utilization, a.device, a.kv_cache_bytes)
    if a.allowed_local_media_path is not None and not os.path.isdir(a.allowed_local_media_path):
        raise ValueError(f"--allowed-local-media-path: {a.allowed_local_media_path!r} is not a folder")
    if a.api_key is not None and not a.api_key:
        raise ValueError("--api-key must not be empty")


def cmd_serve(a) -> int:
    check_args(a)
    import uvicorn

    import llama4_native as l4

    from .app import ServerConfig, create_app
    from .media import MediaPolicy

    if a.threads:
        l4.set_cpu_threads(a.threads)
    options = dict(max_sequences=a.max_num_seqs, quantization=a.quantization, kv_cache_dtype=a.kv_cache_dtype,
                   tensor_parallel_size=a.tensor_parallel_size, enforce_eager=a.enforce_eager)
    if a.kv_cache_bytes:
        options["kv_cache_bytes"] = a.kv_cache_bytes
    if a.gpu_memory_utilization is not None:
        options["gpu_memory_utilization"] = a.gpu_memory_utilization
    model = l4.load(a.model_dir, device=a.device, dtype=a.dtype, progress=True, **options)
    limit = model.max_context
    if a.max_model_len is not None and a.max_model_len > limit:
        raise ValueError(f"--max-model-len {a.max_model_len} is more than the model's "
                         f"max_position_embeddings ({limit})")
    policy = MediaPolicy(allowed_domains=frozenset(d.lower() for d in a.allowed_media_domains),
                         allow_private=a.allow_private_media, allowed_local_path=a.allowed_local_media_path,
                         max_bytes=a.max_media_bytes, timeout_s=a.media_timeout)
    config = ServerConfig(served_model_name=a.served_model_name or a.model, max_model_len=a.max_model_len or limit,
                          api_key=a.api_key, max_num_seqs=a.max_num_seqs, max_waiting=a.max_waiting, media=policy,
                          max_body_bytes=a.max_request_bytes)
    app = create_app(model, config)
    print(f"[serving {config.served_model_name} on http://{a.host}:{a.port} (chat page at /)]", file=sys.stderr)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.run(app, host=a.host, port=a.port, log_level=a.log_level)
    return 0
