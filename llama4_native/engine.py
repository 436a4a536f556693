"""`load()` and `Model`: a checkpoint on the C++ engine.

A Model owns one `_C.Engine` (text decoder + paged KV cache). Every call into it is one step of a
batch of sequences; Python keeps the sequences' token lists and samples from the logits.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from . import _C
from .config import ModelConfig
from .generate import generate
from .gpu_memory import check_utilization, kv_bytes_from_gpu_memory
from .hf_cache import resolve_model
from .prompts import as_id_list
from .quantization import QUANTIZATIONS, _group_size, _layers
from .weights import ProgressBar

_DTYPES = ("float32", "bfloat16")
# load(kv_cache_dtype=...): vLLM's names; "fp8" is e4m3 with a float32 scale per token and KV head.
KV_CACHE_DTYPES = {"auto": None, "fp8": "float8_e4m3fn", "fp8_e4m3": "float8_e4m3fn",
                   "bfloat16": "bfloat16", "float32": "float32"}


class Model:
    """A loaded Llama 4 checkpoint. Create it with `llama4_native.load()`."""

    def __init__(self, path: str, device: str = "cpu", dtype: str = "bfloat16", *,
                 kv_cache_bytes: int | None = None, max_sequences: int = 16, page_size: int = 16,
                 progress: bool | None = None, quantization: str | None = None,
                 activation_scale_ub: float | None = None, fp8_skip_layers=(), int4_group_size: int | None = None,
                 gpu_memory_utilization: float | None = None, kv_cache_dtype: str = "auto",
                 tensor_parallel_size: int = 1, check_weights: bool = False, enforce_eager: bool = False,
                 collective_timeout_s: float = 60.0, _rank: int = 0, _store_dir: str | None = None):
        if not isinstance(enforce_eager, bool):
            raise TypeError(f"enforce_eager must be a bool, got {type(enforce_eager).__name__}")
        self.enforce_eager = enforce_eager
        tp = _check_parallel(tensor_parallel_size, collective_timeout_s)
        self.tensor_parallel_size = tp
        self._group = None  # the worker processes this process started (rank 0 of several)
        rank, store, torchrun = 0, None, False
        if tp > 1:  # llama4_native/parallel.py: who starts the ranks and where they meet
            from . import parallel

            run = parallel.torchrun_rank()
            if _store_dir is not None:  # a worker started by rank 0
                rank, store = _rank, _C.FileStore(_store_dir)
            elif run is not None:
                rank, world = run
                if world != tp:
                    raise ValueError(f"tensor_parallel_size={tp} but torchrun started WORLD_SIZE={world} ranks")
                torchrun = True
                store = parallel.torchrun_store(rank, tp, collective_timeout_s)
            if str(device).startswith("cuda"):  # one GPU per rank
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) if torchrun else rank}"
        device = _parse_device(device)
        if gpu_memory_utilization is not None:
            check_utilization(gpu_memory_utilization, device, kv_cache_bytes)
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
        if kv_cache_dtype not in KV_CACHE_DTYPES:
            raise ValueError(f"kv_cache_dtype must be one of {tuple(KV_CACHE_DTYPES)}, got {kv_cache_dtype!r}")
        self.kv_cache_dtype = KV_CACHE_DTYPES[kv_cache_dtype] or dtype
        self.path = os.fspath(path)
        self.device = device
        self.dtype = dtype
        # One C++ call reads config.json, generation_config.json and the text weights (FP8 routed
        # experts stored in the checkpoint, or quantized at load; llama4/checkpoint.h).
        self._comm = None
        if tp > 1:  # a config that cannot be split fails here, before any process starts
            parallel.check_shardable(self.path, tp, dtype, quantization, _layers(fp8_skip_layers),
                                     _group_size(int4_group_size))
        if tp > 1 and store is None:  # rank 0 starts the others, which load their shards meanwhile
            self._group = parallel.start_workers(self.path, tp, dict(
                device=device, dtype=dtype, kv_cache_bytes=kv_cache_bytes, max_sequences=max_sequences,
                page_size=page_size, progress=False, quantization=quantization,
                activation_scale_ub=activation_scale_ub, fp8_skip_layers=tuple(fp8_skip_layers),
                int4_group_size=int4_group_size, gpu_memory_utilization=gpu_memory_utilization, kv_cache_dtype=kv_cache_dtype,
                collective_timeout_s=collective_timeout_s, enforce_eager=enforce_eager))
            store = _C.FileStore(self._group.store_dir)
        try:
            self._load(device, dtype, kv_cache_bytes, max_sequences, page_size, progress, quantization,
                       activation_scale_ub, fp8_skip_layers, gpu_memory_utilization, rank, store,
                       collective_timeout_s, check_weights, int4_group_size)
        except BaseException:
            self.close()
            raise
        self._store = store
        if torchrun and rank != 0:  # this process serves rank 0's model, then ends
            self._engine.follow()
            parallel.leave_together(store, rank, tp)
            raise SystemExit(0)

    def _load(self, device, dtype, kv_cache_bytes, max_sequences, page_size, progress, quantization,
              activation_scale_ub, fp8_skip_layers, gpu_memory_utilization, rank, store, timeout_s,
              check_weights=False, int4_group_size=None):
        tp = self.tensor_parallel_size
        if not isinstance(check_weights, bool):
            raise TypeError(f"check_weights must be a bool, got {type(check_weights).__name__}")
        bar = ProgressBar(self.path, progress if rank == 0 else False)
        # check_weights: rank 0 scans the whole checkpoint (the other ranks read shards of it)
        self._checkpoint = _C.load_checkpoint(self.path, dtype, quantization, activation_scale_ub,
                                              _layers(fp8_skip_layers), False, bar.update, rank, tp,
                                              check_weights=check_weights and rank == 0,
                                              int4_group_size=_group_size(int4_group_size))
        bar.close()
        self.config: ModelConfig = self._checkpoint.config
        text = self.config.text
        self.fp8_layers = list(self._checkpoint.fp8_layers)
        self.int4_layers = list(self._checkpoint.int4_layers)
        self.int4_mlp_layers = list(self._checkpoint.int4_mlp_layers)  # INT4 shared expert / dense MLP
        weights = self._checkpoint.text_weights
        if device != "cpu":
            weights = _upload(weights, device)
        if gpu_memory_utilization is not None:  # what the weights left of the GPU's share
            from .plan import step_workspace_bytes

            reserve = step_workspace_bytes(text, dtype, int(max_sequences), tp)
            kv_cache_bytes = kv_bytes_from_gpu_memory(device, gpu_memory_utilization, reserve)
        if kv_cache_bytes is None:
            kv_cache_bytes = _default_kv_bytes(text, dtype)
        options = {"page_size": int(page_size), "kv_cache_bytes": int(kv_cache_bytes),
                   "max_sequences": int(max_sequences), "kv_cache_dtype": self.kv_cache_dtype,
                   "enforce_eager": self.enforce_eager}
        if self.config.vision is not None:
            options["image_token_id"] = int(self.config.image_token_index)
        if tp > 1:
            from . import parallel

            if self._group is not None:
                self._group.wait_ready(timeout_s=parallel.join_timeout_s(timeout_s))
            elif isinstance(store, _C.FileStore) and rank > 0:
                open(os.path.join(store.dir, f"ready_{rank}"), "w").close()
            options["comm"] = self._comm = parallel.communicator(store, rank, tp, device, timeout_s)
        self._engine = _C.Engine(text, dtype, weights, options)
        self.max_sequences = int(max_sequences)
        self.generation_config = self._checkpoint.generation_config.to_dict()
        self._tokenizer = None
        self._vision = None  # the vision tower, loaded on first use (images)
        self.image_tokens = _image_tokens(self.config)

    def close(self) -> None:
        """Frees the engine; with several ranks, tells the workers this process started to stop
        and waits for them. Idempotent."""
        engine = getattr(self, "_engine", None)
        if engine is not None and getattr(self, "_group", None) is not None:
            engine.release_followers()  # now, even while a scheduler still holds the engine
        self._engine = None
        if getattr(self, "_group", None) is not None:
            self._group.close()
            self._group = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- low level -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.text.vocab_size

    @property
    def max_context(self) -> int:
        return self.config.text.max_position_embeddings

    @property
    def cuda_graphs(self) -> bool:
        """Whether decode steps replay CUDA graphs (a GPU, one rank, and not enforce_eager)."""
        return bool(self._engine.uses_cuda_graphs)

    def decode_graph_stats(self) -> dict:
        """What the CUDA decode layouts did: graphs, captures, replays, eager_steps (steps run
        without a graph: enforce_eager, each layout's first step, failed captures),
        graph_memory_bytes (CUDA's graph memory pool) and error (why a capture failed, or "").
        All zero on the CPU."""
        return dict(self._engine.decode_graph_stats())

    @property
    def tokenizer(self):
        """The checkpoint's tokenizer (its tokenizer.json / tokenizer.model), else the bundled
        Llama 4 tokenizer."""
        if self._tokenizer is None:
            from .tokenizer import Tokenizer

            self._tokenizer = Tokenizer.from_checkpoint(self.path)
        return self._tokenizer

    def default_stop_ids(self) -> list[int]:
        """generation_config.json's eos ids, else the config's, else Llama 4's stop tokens
        (llama4/generation_defaults.h, the rule the C++ generate example uses too)."""
        return list(_C.default_stop_ids(self._checkpoint.generation_config, self.config))

    def default_sampling(self) -> dict:
        """Greedy, or generation_config.json's temperature / top_k / top_p when it says do_sample
        (llama4/generation_defaults.h)."""
        return dict(_C.default_sampling(self._checkpoint.generation_config))

    def _new_sequence(self) -> int:
        return self._engine.add_sequence()

    def _free_sequence(self, seq: int) -> None:
        self._engine.free_sequence(seq)

    def _step(self, requests: Sequence[tuple]) -> torch.Tensor:
        """One engine step: [(seq, new_tokens, all_logits[, image_features]), ...] -> float32
        logits rows. image_features: [n, D] rows for the request's <|patch|> tokens, or None."""
        return torch.from_dlpack(self._engine.step(list(requests)))

    # ---- images ------------------------------------------------------------------------------
    @property
    def vision(self):
        """The vision tower (`_C.VisionModel`), loaded from the checkpoint on first use."""
        if self._vision is None:
            ckpt = self._checkpoint.checkpoint
            if self.config.vision is None or not ckpt.has_vision_weights():
                raise ValueError(f"{self.path}: this checkpoint has no vision tower "
                                 f"({self.config.architecture}); it cannot take images")
            weights = dict(_C.vision_weight_stream(ckpt, self.config.vision, self.dtype))
            if self.device != "cpu":  # the tower runs where the text model runs
                weights = _upload(weights, self.device)
            self._vision = _C.VisionModel(self.config.vision, self.dtype, weights)
        return self._vision

    def encode_images(self, images) -> torch.Tensor:
        """Vision features of images (see llama4_native.multimodal for the accepted kinds):
        [sum(tiles) * tokens_per_tile, hidden_size] in the model dtype, images and tiles in order."""
        from .multimodal import as_image_inputs, vision_features

        inputs = as_image_inputs(images, self._vision_config())
        if not inputs:
            return torch.empty(0, self.config.text.hidden_size, dtype=_TORCH_DTYPES[self.dtype])
        return vision_features(self.vision, inputs, _TORCH_DTYPES[self.dtype], self.device)

    def _vision_config(self):
        if self.config.vision is None:
            raise ValueError(f"{self.path}: this checkpoint has no vision tower "
                             f"({self.config.architecture}); it cannot take images")
        return self.config.vision

    def _with_images(self, ids: list[int], images) -> tuple[list[int], torch.Tensor | None]:
        """(prompt ids with every image's <|patch|> tokens, their feature rows); the vision tower
        runs here, once per prompt (prefill only)."""
        from .multimodal import as_image_inputs, prompt_with_images, vision_features

        c = self._vision_config()
        inputs = as_image_inputs(images, c)
        ids = prompt_with_images(ids, inputs, self.image_tokens, c.tokens_per_tile)
        if not inputs:
            return ids, None
        return ids, vision_features(self.vision, inputs, _TORCH_DTYPES[self.dtype], self.device)

    # ---- public API --------------------------------------------------------------------------
    def logits(self, input_ids, images=None) -> torch.Tensor:
        """Logits [len(ids), vocab] (float32) of a fresh sequence, one row per position. With
        images, `input_ids` hold one <|image|> per image, expanded here (the rows are then those of
        the expanded prompt), or are already expanded (<|patch|> tokens)."""
        ids = as_id_list(input_ids, "input_ids")
        features = None
        if images is not None:
            ids, features = self._with_images(ids, images)
        elif self.config.vision is not None and self.image_tokens.patch in ids:
            raise ValueError(f"input_ids hold {ids.count(self.image_tokens.patch)} image placeholder tokens "
                             f"(<|patch|>, id {self.image_tokens.patch}) but no images were given")
        seq = self._new_sequence()
        try:
            return self._step([(seq, ids, True, features)])
        finally:
            self._free_sequence(seq)

    def generate(self, prompt=None, **kwargs):
        """Generate text/tokens; see llama4_native.generate.generate for the parameters."""
        return generate(self, prompt, **kwargs)


_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _image_tokens(config: ModelConfig):
    """The ids images expand into: <|patch|>, <|image_start|> and <|image_end|> from the config
    (image/boi/eoi_token_index), the placeholder and tile separators Llama 4's (LLAMA4.md §4.1).
    Replace `model.image_tokens` for a checkpoint with another vocabulary."""
    from .chat import ImageTokens

    if config.vision is None:
        return ImageTokens()
    return ImageTokens(patch=config.image_token_index, start=config.boi_token_index,
                       end=config.eoi_token_index)


def _check_parallel(tensor_parallel_size, timeout_s) -> int:
    if isinstance(tensor_parallel_size, bool) or not isinstance(tensor_parallel_size, int) or tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size must be an int >= 1, got {tensor_parallel_size!r}")
    if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ValueError(f"collective_timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return tensor_parallel_size


def _parse_device(device) -> str:
    """'cpu', 'cuda' or 'cuda:N' (a torch.device is accepted too) -> 'cpu' or 'cuda:N'; a CUDA
    device needs this build's CUDA backend and a GPU (ValueError otherwise)."""
    name = str(device)
    if name == "cpu":
        return name
    if name == "cuda":
        name = "cuda:0"
    head, _, index = name.partition(":")
    if head != "cuda" or not index.isdigit():
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not _C.cuda_available():
        raise ValueError(f"device {device!r}: this build of llama4_native has no CUDA backend or sees no GPU "
                         f"(build_info: {_C.build_info()})")
    if int(index) >= _C.cuda_device_count():
        raise ValueError(f"device {device!r}: only {_C.cuda_device_count()} CUDA devices are visible")
    return name


def _upload(weights: dict, device: str) -> dict:
    """The weights copied to the GPU once (torch's allocator owns them; the engine keeps views).
    Waits for the copies, since the engine reads them from its own stream."""
    out = {}
    for name, t in weights.items():
        t = t if isinstance(t, torch.Tensor) else torch.from_dlpack(t)
        out[name] = t.to(device) if t.is_contiguous() else _upload_experts(t, device)
    torch.cuda.synchronize(device)
    return out


def _upload_experts(t: torch.Tensor, device: str) -> torch.Tensor:
    """Float experts the CPU reads in Hugging Face's layout (a transposed view of the mapped file,
    ops.expert_layout) -> contiguous [E, N, K] on the GPU, as its kernels read them: one expert's
    transpose at a time on the host, never a copy of the whole tensor."""
    out = torch.empty(t.shape, dtype=t.dtype, device=device)
    for e in range(t.shape[0]):
        out[e].copy_(t[e].contiguous())
    return out


def _default_kv_bytes(text, dtype: str) -> int:
    """A KV budget that holds the full context for a few sequences, capped at 1 GiB."""
    per_token = 2 * text.num_hidden_layers * text.num_key_value_heads * text.head_dim
    per_token *= 4 if dtype == "float32" else 2
    return int(min(1 << 30, max(64 << 20, per_token * min(text.max_position_embeddings, 32768) * 4)))


def load(path, device: str = "cpu", dtype: str = "bfloat16", **options) -> Model:
    """Load a Hugging Face Llama 4 checkpoint folder onto the engine. `path` may also be a model id
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct") already in the local Hugging Face cache
    (hf_cache.py; nothing is downloaded).

    FP8 routed experts: checkpoints stored in FP8 (compressed-tensors or fbgemm_fp8
    quantization_config) load as FP8; quantization="fp8" quantizes a bf16/fp32 checkpoint's experts
    at load (per output channel), except the layers in fp8_skip_layers (Meta's recipe skips the first
    and the last: (0, -1)). activation_scale_ub bounds each activation row's amax before FP8
    quantization (default: the checkpoint's, 1200 when quantizing at load; 0: no bound).

    INT4 (W4A16: int4 weights, one bf16 scale per group of int4_group_size along the input, bf16
    activations; llama4/moe_int4.h): compressed-tensors "pack-quantized" checkpoints load as INT4
    whatever their ignore list leaves quantized among the routed experts, the shared expert and the
    dense MLPs (llm-compressor's Llama 4 recipe quantizes all three); quantization="int4" quantizes
    the same three at load (symmetric, round to nearest, group 128 unless int4_group_size says
    otherwise), except the layers in fp8_skip_layers (same rule as FP8), so both routes give the same
    tensors. model.int4_layers lists the INT4 routed-expert layers, model.int4_mlp_layers the layers
    whose shared expert or dense MLP is INT4. Under tensor parallelism each rank's share of the
    shared expert's / dense MLP's intermediate width must be whole groups (ValueError otherwise).

    KV cache: kv_cache_bytes (default: the full context for a few sequences, at most 1 GiB), or on
    a GPU gpu_memory_utilization=F: the share F of the device's memory, less what the weights
    took and a reserve for a step's activations (gpu_memory.py). kv_cache_dtype: "auto" (the model
    dtype) or "fp8" (e4m3 K and V, one float32 scale per token and KV head: ~1.94x the tokens in the
    same bytes at head_dim 128).

    CUDA graphs: on a GPU (one rank), decode steps (one new token per sequence, at most
    max_sequences of them) are captured once per batch-size bucket and page-table width in a CUDA
    graph and replayed, which removes the per-kernel launch cost. enforce_eager=True (vLLM's name)
    runs the same padded steps without graphs: the same logits bit for bit. No effect on the CPU.
    `model.cuda_graphs` says whether graphs are in use, `model.decode_graph_stats()` what they did.

    check_weights=True scans every tensor of the checkpoint for NaN and infinity before loading and
    raises CheckpointError naming the first (file, tensor, element). Off by default: it reads every
    byte of the checkpoint, which a zero-copy load otherwise leaves on disk until it is used."""
    return Model(resolve_model(path), device=device, dtype=dtype, **options)
