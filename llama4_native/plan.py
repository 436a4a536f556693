"""The memory planner: what a Llama 4 model occupies, and how much context fits in a GPU's memory.

    plan = llama4_native.plan(preset="scout", gpu_memory="80GiB", quantization="fp8")
    plan.weights            # bytes per part: experts, shared_expert, attention, dense_mlp, ...
    plan.kv_bytes_per_token # {"chunked": ..., "global": ...} (all layers of each kind)
    plan.max_context        # longest single sequence that fits (tokens)
    plan.max_sequences(32768)
    print(plan)             # the same as `llama4-native plan`

Every count comes from the engine's own tables, so the planner counts what the engine allocates:
the weight tensors and their dtypes are `_C.text_weight_specs` / `_C.vision_weight_specs` (the
table TextModel validates against), the FP8 expert layers `_C.fp8_expert_layers` (the loader's
rule), and the KV pools `_C.kv_cache_layout` / `_C.kv_page_bytes` (KVCacheConfig.from_budget and
page_bytes, which size the engine's cache). tests/test_plan.py checks weights and KV pool against a
loaded engine to the byte.

Chunked-attention (RoPE) layers keep only their current window (attention_chunk_size tokens) per
sequence, so long contexts cost KV memory only on the global (NoPE) layers: one in four layers.

Several GPUs (`gpus=N`) are answered per GPU for the parallel engine's tensor + expert parallelism
(`load(..., tensor_parallel_size=N)`), from its own shard shapes (llama4/shard.h): query heads split
across ranks, KV heads split (one per rank, replicated, when there are fewer KV heads than ranks),
routed experts split by whole experts, the shared expert and the dense MLP along their intermediate
width, embedding and lm_head by vocabulary rows, norms and routers replicated; the vision tower is
counted whole on every rank. The rank holding the most is the one that must fit.

The workspace is an estimate, not an allocation the engine makes up front: activations of one
forward pass of `max_step_tokens` tokens (temporaries come from a stream-ordered pool on CUDA), what
the CUDA decode graphs keep (decode_graph_bytes: one rank only) plus, on a GPU, CUDA_RESERVE_BYTES for
the CUDA context and library workspaces.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from . import _C
from .config import load_config
from .plan_presets import PRESETS

# nvidia-smi's totals for the two cards the README plans for.
GPU_MEMORY = {"h100": 81559 << 20, "h200": 143771 << 20}
CUDA_RESERVE_BYTES = 1 << 30
# Context lengths `sequences` answers for by default (those up to the model's max_model_len).
DEFAULT_LENGTHS = (8192, 32768, 131072, 1048576, 10485760)
KV_CACHE_DTYPES = {"auto": None, "bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32",
                   "float32": "float32", "fp8": "float8_e4m3fn", "fp8_e4m3": "float8_e4m3fn"}
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
PARTS = ("experts", "shared_expert", "attention", "dense_mlp", "embeddings", "norms", "vision")


def parse_bytes(value) -> int:
    """80GiB, 141GB, 81559MiB, 'h100', 'h200' or an int -> bytes (ValueError otherwise)."""
    if isinstance(value, bool):
        raise ValueError(f"gpu_memory: expected a size such as '80GiB', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"gpu_memory must be > 0 bytes, got {value}")
        return value
    s = str(value).strip().lower()
    if s in GPU_MEMORY:
        return GPU_MEMORY[s]
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([a-z]*)", s)
    if not m or m.group(2) not in _UNITS or float(m.group(1)) <= 0:
        raise ValueError(f"gpu_memory: expected a size such as '80GiB', '141GB', 'h100' or 'h200', got {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _part(name: str) -> str:
    """The planner's part of a text-decoder weight name (llama4/model.h)."""
    if not name.startswith("layers."):
        return "embeddings" if name in ("embed_tokens", "lm_head") else "norms"
    what = name.split(".", 2)[2]
    if what.startswith("moe.shared") or what == "moe.router":
        return "shared_expert"
    if what.startswith("moe."):
        return "experts"
    if what.startswith("attn."):
        return "attention"
    if what.startswith("mlp."):
        return "dense_mlp"
    return "norms"


def _rank_weights(text, dtype: str, fp8_layers: list, gpus: int, int4_group_size: int = 0,
                  int4_mlp_layers=()) -> tuple[dict, int]:
    """The weight bytes by part of the tensor-parallel rank holding the most (the parallel engine's
    own shard shapes, llama4/shard.h: its ValueError names tensor_parallel_size when the config
    cannot be split over `gpus` ranks, or an INT4 down projection not on group boundaries) and the
    KV heads a rank holds."""
    best, kv_heads = None, text.num_key_value_heads
    mlp = list(int4_mlp_layers)
    for rank in range(gpus):
        if gpus == 1:
            specs = _C.text_weight_specs(text, dtype, fp8_layers, int4_group_size, mlp)
        else:
            specs, kv_heads = _C.text_shard_specs(text, dtype, fp8_layers, rank, gpus, int4_group_size, mlp)
        parts = dict.fromkeys(PARTS, 0)
        for name, _, _, nbytes in specs:
            parts[_part(name)] += nbytes
        if best is None or sum(parts.values()) > sum(best.values()):
            best = parts
    return best, kv_heads


def workspace_bytes(text, tokens: int, rows: int, dtype_size: int, n: int = 1, kv_heads: int = 0) -> int:
    """Estimated activations of one forward pass of `tokens` tokens on one of n ranks, with `rows`
    logits rows (float32): the residual stream and its norm, the fused QKV and attention outputs,
    the feed-forward's widest intermediates (routed top-k + shared expert, or the dense MLP), each
    counted twice for the fp32 accumulators and quantized copies the kernels keep alongside."""
    D = text.hidden_size
    heads = math.ceil(text.num_attention_heads / n)
    attn = (heads + 2 * (kv_heads or text.num_key_value_heads) + heads) * text.head_dim
    k = text.num_experts_per_tok
    moe = 3 * text.intermediate_size * (k + 1) if text.moe_layers else 0
    dense = 3 * math.ceil(text.intermediate_size_mlp / n) if len(text.moe_layers) < text.num_hidden_layers else 0
    per_token = (3 * D + attn + max(moe, dense)) * dtype_size * 2
    return tokens * per_token + rows * math.ceil(text.vocab_size / n) * 4


def step_workspace_bytes(text, dtype: str, rows: int, gpus: int = 1, max_step_tokens: int = 0) -> int:
    """workspace_bytes for the step the engine runs: max_step_tokens tokens (0: a whole
    attention chunk, the engine's default), `rows` logits rows (its max_sequences), on one of
    `gpus` ranks holding the KV heads the sharding gives it. The planner and load(...,
    gpu_memory_utilization=F) both reserve this."""
    step = text.attention_chunk_size if not max_step_tokens else min(int(max_step_tokens), text.attention_chunk_size)
    kv_heads = text.num_key_value_heads if gpus == 1 else _C.text_shard_specs(text, dtype, [], 0, gpus, 0)[1]
    size = 2 if dtype == "bfloat16" else 4
    return workspace_bytes(text, step, rows, size, gpus, kv_heads) + decode_graph_bytes(text, size, rows, gpus)


def decode_graph_bytes(text, dtype_size: int, rows: int, gpus: int = 1) -> int:
    """What the CUDA decode graphs of one rank hold besides the step pool (csrc/model/decode_graphs.h):
    the layouts' shared logits buffer [rows, vocab] float32, and the activations of one decode step
    of `rows` tokens, which a captured graph keeps in CUDA's graph memory pool (graphs replayed one
    after the other on one stream). Several ranks run no graphs: 0."""
    if gpus != 1:
        return 0
    return workspace_bytes(text, rows, rows, dtype_size) + rows * text.vocab_size * 4


@dataclass
class MemoryPlan:
    """The planner's answer, per GPU (see the module docstring). Bytes unless said otherwise."""

    model: str
    gpus: int
    dtype: str
    quantization: str | None
    kv_cache_dtype: str
    weights: dict                  # part -> bytes on one GPU (PARTS)
    fp8_layers: list               # MoE layers whose routed experts are quantized (FP8, or INT4 when int4_group_size)
    kv_bytes_per_token: dict       # {"chunked": b, "global": b}: K+V of all layers of the group, one GPU
    chunk_size: int                # attention_chunk_size: the chunked layers' window
    chunked_pages_per_sequence: int  # the most chunked-layer pages a sequence holds (its window)
    page_size: int
    max_step_tokens: int
    workspace_bytes: int
    memory_bytes: int | None       # the GPU's memory (None: kv_cache_bytes was given)
    gpu_memory_utilization: float
    kv_budget_bytes: int           # what is left for the KV cache
    max_model_len: int
    max_context: int               # longest single sequence that fits (<= max_model_len); 0: none
    sequences: dict = field(default_factory=dict)  # context length -> sequences of it that fit
    int4_group_size: int = 0       # > 0: the quantized experts are INT4 (W4A16) with this group size
    int4_mlp_layers: list = field(default_factory=list)  # layers whose shared expert / dense MLP is INT4
    _layout: object = field(default=None, repr=False)

    @property
    def weight_bytes(self) -> int:
        return sum(self.weights.values())

    @property
    def fits(self) -> bool:
        return self.max_context > 0

    def kv_pool(self, max_sequences: int) -> dict:
        """The engine's KV pools for this budget with `max_sequences` live sequences:
        num_pages_chunked, num_pages_global, page_bytes, pool_bytes (KVCacheConfig.from_budget)."""
        return self._layout(max_sequences)

    def max_sequences(self, length: int) -> int:
        """How many sequences of `length` tokens fit at once (0 when not one)."""
        if length <= 0:
            raise ValueError(f"length must be > 0, got {length}")
        if length > self.max_model_len or self.kv_budget_bytes <= 0:
            return 0
        P = self.page_size
        pages = math.ceil(length / P)
        chunked_pages = min(pages, self.chunked_pages_per_sequence)
        has = (self.kv_bytes_per_token["chunked"] > 0, self.kv_bytes_per_token["global"] > 0)

        def fits(n: int) -> bool:
            pool = self._layout(n)
            if pool is None:
                return False
            return ((not has[0] or n * chunked_pages <= pool["num_pages_chunked"])
                    and (not has[1] or n * pages <= pool["num_pages_global"]))

        per_seq = (self.kv_bytes_per_token["global"] * pages * P
                   + self.kv_bytes_per_token["chunked"] * chunked_pages * P)
        lo, hi = 0, max(1, self.kv_budget_bytes // max(per_seq, 1)) + 1
        while lo < hi:  # the largest n that fits (fitting is monotone in n)
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def __str__(self) -> str:
        return format_plan(self)


def plan(model=None, *, preset: str | None = None, gpu_memory=None, gpus: int = 1,
         quantization: str | None = None, kv_cache_dtype: str = "auto", max_model_len: int | None = None,
         dtype: str = "bfloat16", page_size: int = 16, max_step_tokens: int | None = None,
         gpu_memory_utilization: float = 0.9, kv_cache_bytes: int | None = None, max_sequences: int | None = None,
         lengths=None, fp8_skip_layers=(), vision: bool = True, int4_group_size: int | None = None) -> MemoryPlan:
    """Plan the memory of a checkpoint folder `model` (its config.json; no weights are read) or of a
    `preset` ("scout", "maverick") on one GPU of `gpu_memory` ("80GiB", "h100", bytes), or, with
    `kv_cache_bytes`, for a given KV budget (what load(kv_cache_bytes=...) gets; weights and workspace
    are then reported but not subtracted). `quantization`: None, "fp8" (routed experts e4m3, except
    fp8_skip_layers) or "int4" (W4A16: packed int4 + a bf16 scale per int4_group_size inputs, default
    128; the routed experts, the shared expert and the dense MLPs, except fp8_skip_layers) — as load()
    takes them; a checkpoint stored quantized plans as stored. `max_sequences`:
    the sequences the chunked-layer pool is sized for (as load()); `lengths`: the context lengths
    `sequences` answers for (default: DEFAULT_LENGTHS and max_model_len)."""
    config, name = _config(model, preset)
    text = config.text
    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype must be 'bfloat16' or 'float32', got {dtype!r}")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be an integer >= 1, got {gpus!r}")
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"kv_cache_dtype must be one of {sorted(KV_CACHE_DTYPES)}, got {kv_cache_dtype!r}")
    kv_dtype = KV_CACHE_DTYPES[kv_cache_dtype] or dtype
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if (gpu_memory is None) == (kv_cache_bytes is None):
        raise ValueError("give exactly one of gpu_memory (plan a GPU) and kv_cache_bytes (plan a KV budget)")
    max_model_len = text.max_position_embeddings if max_model_len is None else int(max_model_len)
    if not 0 < max_model_len <= text.max_position_embeddings:
        raise ValueError(f"max_model_len must be in [1, max_position_embeddings={text.max_position_embeddings}], "
                         f"got {max_model_len}")
    step = text.attention_chunk_size if not max_step_tokens else min(int(max_step_tokens), text.attention_chunk_size)

    from .quantization import _group_size

    fp8 = _C.fp8_plan(config, quantization, None, list(fp8_skip_layers), name, _group_size(int4_group_size))
    root = "language_model." if config.architecture == "Llama4ForConditionalGeneration" else ""
    fp8_layers = list(_C.fp8_expert_layers(text, fp8, root)) if fp8 is not None else []
    mlp_layers = list(_C.int4_mlp_layers(text, fp8, root)) if fp8 is not None else []
    group = fp8.int4_group_size if fp8 is not None else 0
    weights, kv_heads = _rank_weights(text, dtype, fp8_layers, gpus, group, mlp_layers)
    if vision and config.vision is not None:  # replicated on every rank
        weights["vision"] = sum(spec[3] for spec in _C.vision_weight_specs(config.vision, dtype))

    chunked = [1 if text.uses_rope(i) else 0 for i in range(text.num_hidden_layers)]
    kv_args = dict(num_layers=text.num_hidden_layers, layer_chunked=chunked,
                   num_kv_heads=kv_heads, head_dim=text.head_dim,
                   dtype=kv_dtype, page_size=int(page_size), chunk_size=text.attention_chunk_size)
    page0, page1 = _C.kv_page_bytes(**kv_args)
    n_chunked = sum(chunked)
    per_token = {"chunked": page0 // page_size if n_chunked else 0,
                 "global": page1 // page_size if n_chunked < len(chunked) else 0}
    bound = _C.KVCache.chunked_pages_bound(page_size, text.attention_chunk_size, step) if n_chunked else 0

    workspace = step_workspace_bytes(text, dtype, max_sequences or 16, gpus, step)
    if kv_cache_bytes is not None:
        memory, budget = None, int(kv_cache_bytes)
    else:
        memory = parse_bytes(gpu_memory)
        workspace += CUDA_RESERVE_BYTES
        budget = int(memory * gpu_memory_utilization) - sum(weights.values()) - workspace

    def layout(n: int):
        if budget <= 0:
            return None
        try:
            return dict(_C.kv_cache_layout(**kv_args, budget_bytes=budget, max_seqs=n, max_step_tokens=step))
        except ValueError:  # too small for one sequence
            return None

    stored = ("int4" if group else "fp8") if fp8 is not None and fp8.stored else quantization
    p = MemoryPlan(model=name, gpus=gpus, dtype=dtype, quantization=stored if fp8_layers or mlp_layers else None,
                   kv_cache_dtype=kv_dtype, weights=weights, fp8_layers=fp8_layers, kv_bytes_per_token=per_token,
                   chunk_size=text.attention_chunk_size, chunked_pages_per_sequence=bound, page_size=page_size,
                   max_step_tokens=step, workspace_bytes=workspace, memory_bytes=memory,
                   gpu_memory_utilization=gpu_memory_utilization, kv_budget_bytes=budget,
                   max_model_len=max_model_len, max_context=0, _layout=layout, int4_group_size=group,
                   int4_mlp_layers=mlp_layers)
    one = layout(1)
    if one is not None:
        ctx = one["num_pages_global"] * page_size if per_token["global"] else max_model_len
        p.max_context = min(ctx, max_model_len)
    wanted = sorted({*(x for x in (lengths or DEFAULT_LENGTHS) if x <= max_model_len), max_model_len})
    p.sequences = {length: p.max_sequences(length) for length in wanted}
    return p


def _config(model, preset):
    if (model is None) == (preset is None):
        raise ValueError("give exactly one of model (a checkpoint folder) and preset ('scout' or 'maverick')")
    if preset is not None:
        key = str(preset).lower()
        if key not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        return load_config(PRESETS[key]), key
    path = os.fspath(model)
    return load_config(path), path


def _gib(n: int) -> str:
    return f"{n / (1 << 30):8.2f} GiB"


def _tokens(n: int) -> str:
    return f"{n / 2**20:g}M" if n >= 2**20 and n % 2**14 == 0 else f"{n / 1024:g}k" if n % 1024 == 0 else str(n)


def format_plan(p: MemoryPlan) -> str:
    q = p.quantization or "none"
    head = f"{p.model}: weights {p.dtype}, experts {q}, KV cache {p.kv_cache_dtype}"
    head += f", per GPU of {p.gpus}" if p.gpus > 1 else ""
    lines = [head, "weights:"]
    for part in PARTS:
        if p.weights[part]:
            lines.append(f"  {part:<14}{_gib(p.weights[part])}")
    lines.append(f"  {'total':<14}{_gib(p.weight_bytes)}")
    if p.fp8_layers:
        kind = f"INT4 (group {p.int4_group_size})" if p.int4_group_size else "FP8"
        lines.append(f"  {kind} expert layers: {len(p.fp8_layers)} ({p.fp8_layers[0]}..{p.fp8_layers[-1]})")
    if p.int4_mlp_layers:
        lines.append(f"  INT4 shared expert / dense MLP layers: {len(p.int4_mlp_layers)} "
                     f"({p.int4_mlp_layers[0]}..{p.int4_mlp_layers[-1]})")
    kv = p.kv_bytes_per_token
    lines.append("KV cache per token:")
    if kv["chunked"]:
        lines.append(f"  chunked layers  {kv['chunked']:>9,} B  (only the last {p.chunk_size} tokens: at most "
                     f"{p.chunked_pages_per_sequence * p.page_size * kv['chunked'] / (1 << 20):.0f} MiB a sequence)")
    if kv["global"]:
        lines.append(f"  global layers   {kv['global']:>9,} B  (every token)")
    lines.append(f"workspace (estimate){_gib(p.workspace_bytes)}")
    if p.memory_bytes is not None:
        lines.append(f"GPU memory {_gib(p.memory_bytes)} x {p.gpu_memory_utilization:g} -> KV budget "
                     f"{_gib(max(p.kv_budget_bytes, 0))}")
    else:
        lines.append(f"KV budget {_gib(p.kv_budget_bytes)}")
    if not p.fits:
        lines.append("does NOT fit: " + ("the weights and workspace exceed the memory" if p.kv_budget_bytes <= 0
                                         else "no room for one sequence's KV window"))
        return "\n".join(lines)
    lines.append(f"longest context: {p.max_context:,} tokens" +
                 (" (= max_model_len)" if p.max_context == p.max_model_len else ""))
    lines.append("sequences that fit at once: " +
                 ", ".join(f"{n} x {_tokens(length)}" for length, n in p.sequences.items()))
    return "\n".join(lines)


def add_parser(sub) -> None:
    """`llama4-native plan`: the planner on the command line."""
    p = sub.add_parser("plan", help="memory planner: weights, KV cache and the context that fits")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="checkpoint folder (only config.json is read)")
    src.add_argument("--preset", choices=sorted(PRESETS), help="the published Scout / Maverick config")
    p.add_argument("--gpu-memory", default="80GiB", help="memory of one GPU: 80GiB, 141GB, h100, h200")
    p.add_argument("--gpus", type=int, default=1, help="tensor + expert parallel ranks (answers per GPU)")
    p.add_argument("--quantization", default="none", choices=["none", "fp8", "int4"])
    p.add_argument("--int4-group-size", type=int, default=None, help="int4: inputs per bf16 scale (default 128)")
    p.add_argument("--kv-cache-dtype", default="bf16", choices=["bf16", "fp8"],
                   help="fp8: e4m3 with a float32 scale per token and KV head")
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--page-size", type=int, default=16)
    p.add_argument("--fp8-skip-layers", default="", help="comma-separated MoE layers kept bf16 (e.g. 0,-1)")
    p.add_argument("--no-vision", action="store_true", help="leave the vision tower out")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(fn=cmd_plan)


def cmd_plan(a) -> int:
    import dataclasses
    import json

    skip = [int(x) for x in a.fp8_skip_layers.split(",") if x.strip()]
    p = plan(a.model, preset=a.preset, gpu_memory=a.gpu_memory, gpus=a.gpus,
             quantization=None if a.quantization == "none" else a.quantization, kv_cache_dtype=a.kv_cache_dtype,
             max_model_len=a.max_model_len, dtype=a.dtype, gpu_memory_utilization=a.gpu_memory_utilization,
             page_size=a.page_size, fp8_skip_layers=skip, vision=not a.no_vision, int4_group_size=a.int4_group_size)
    if a.json:
        d = {f.name: getattr(p, f.name) for f in dataclasses.fields(p) if not f.name.startswith("_")}
        d["sequences"] = {str(k): v for k, v in p.sequences.items()}
        d["weight_bytes"] = p.weight_bytes
        print(json.dumps(d, indent=2))
    else:
        print(p)
    return 0
