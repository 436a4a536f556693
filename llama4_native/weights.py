"""Text-decoder weights: HF safetensors -> the engine's tensor names, layouts and dtype.

One table (`TEXT_TABLE`) maps every engine tensor to the HF tensor(s) it is built from. An entry may
list several `Source`s (alternative checkpoint layouts, e.g. fused vs per-expert MoE weights); the
first whose first tensor is present with an accepted dtype is used (else the first present, so that
the dtype error names it). FP8 expert layouts (quantization.py) are Sources with dtypes ("F8_E4M3",):
their e4m3 bytes are kept, and the layer's `moe.*_scale` entries (scope "moe_fp8") are read too.
With `Fp8Plan(stored=False)` the routed experts of the other MoE layers are quantized at load.

Everything is validated from the headers before any data is read: missing tensors, tensors nobody
consumes (vision_model.* and multi_modal_projector.* are left for the vision loader), shapes and
dtypes. Engine tensors are contiguous; a tensor that needs neither a layout change nor a dtype
conversion is a zero-copy view of the memory-mapped file (read-only memory, see safetensors_io).

Engine contract (D hidden, H heads, KV kv heads, d head_dim, E experts, I intermediate_size,
Imlp intermediate_size_mlp, V vocab; nn.Linear layout [out, in]):
  embed_tokens [V, D]  norm [D]  lm_head [V, D]
  layers.{i}.input_layernorm [D]  layers.{i}.post_attention_layernorm [D]
  layers.{i}.attn.qkv [(H+2KV)*d, D] = cat(q, k, v)   layers.{i}.attn.o [D, H*d]
  MoE:   layers.{i}.moe.router [E, D]  moe.gate_up [E, 2I, D] (gate rows, then up rows)
         moe.down [E, D, I]  moe.shared_gate_up [2I, D]  moe.shared_down [D, I]
  FP8 MoE layer: moe.gate_up and moe.down are float8_e4m3fn, plus float32 per-output-channel
         scales moe.gate_up_scale [E, 2I] and moe.down_scale [E, D] (all other tensors as above)
  dense: layers.{i}.mlp.gate_up [2Imlp, D]  mlp.down [D, Imlp]
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from . import ops
from .config import TextConfig
from .quantization import Fp8Plan
from .safetensors_io import FLOAT_DTYPES, Checkpoint, CheckpointError, TensorInfo

OUT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
VISION_PREFIXES = ("vision_model.", "multi_modal_projector.")  # the vision loader's namespace
ROOTS = {"conditional": "language_model.", "causal": ""}  # text root per architecture
PROGRESS_MIN_BYTES = 1 << 30

Shape = tuple[str, ...]  # dimension symbols, see _dims()
Pieces = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def _dims(c: TextConfig) -> dict[str, int]:
    """Values of the dimension symbols the table's shapes are written in."""
    d, i, imlp = c.head_dim, c.intermediate_size, c.intermediate_size_mlp
    return {"1": 1, "V": c.vocab_size, "D": c.hidden_size, "E": c.num_local_experts, "I": i, "2I": 2 * i,
            "Imlp": imlp, "2Imlp": 2 * imlp, "Hd": c.num_attention_heads * d,
            "KVd": c.num_key_value_heads * d,
            "QKV": (c.num_attention_heads + 2 * c.num_key_value_heads) * d}


@dataclass(frozen=True)
class Source:
    """One way a checkpoint stores an engine tensor.

    `names` are HF names relative to the text root ("language_model." or ""), with {i} = layer and,
    when `per_expert`, {e} = expert; `shapes[k]` is the expected shape of `names[k]`. Per-expert
    names expand expert-major: [n0(e=0), n1(e=0), n0(e=1), ...]. `pieces` turns the source tensors
    into the engine tensor: either one tensor of the engine shape (a view; may be non-contiguous),
    or 2-D blocks stacked along dim 0 of the engine tensor viewed as [-1, last_dim].
    """

    names: tuple[str, ...]
    shapes: tuple[Shape, ...]
    pieces: Pieces = list
    per_expert: bool = False
    dtypes: tuple[str, ...] = FLOAT_DTYPES  # safetensors dtypes accepted for these tensors
    when: Callable[[TextConfig], bool] = lambda c: True

    @property
    def fp8(self) -> bool:
        """An FP8 expert layout: the engine keeps its e4m3 bytes."""
        return self.dtypes == FP8


@dataclass(frozen=True)
class Entry:
    """An engine tensor: name (with {i}), which layers have it, its shape, and where it comes from."""

    name: str
    scope: str  # "model" (once), "layer" (every layer), "moe" (moe_layers), "dense" (the others),
    #             "moe_fp8" (MoE layers whose experts the checkpoint stores in FP8)
    shape: Shape
    sources: tuple[Source, ...]
    dtype: str | None = None  # engine dtype; None: the model dtype (FP8 sources: float8_e4m3fn)


def _one(*shapes: str) -> tuple[Shape]:
    return (tuple(shapes),)


L = "model.layers.{i}."
FF = L + "feed_forward."

# HF fused experts are x @ W ([E, in, out]); the engine wants nn.Linear [E, out, in].
_transposed: Pieces = lambda ts: [ts[0].transpose(1, 2)]
FP8 = ("F8_E4M3",)
EXPERT_WEIGHTS = ("layers.{i}.moe.gate_up", "layers.{i}.moe.down")
# Scales: fused [E, 1, N] or [E, N, 1] -> [E, N]; per expert, n tensors [rows, 1] -> one [1, N] row.
_scale_rows: Pieces = lambda ts: [ts[0].reshape(ts[0].shape[0], -1)]


def _expert_scale_rows(n: int) -> Pieces:
    return lambda ts: [torch.cat(ts[j:j + n]).reshape(1, -1) for j in range(0, len(ts), n)]

TEXT_TABLE: tuple[Entry, ...] = (
    Entry("embed_tokens", "model", ("V", "D"), (Source(("model.embed_tokens.weight",), _one("V", "D")),)),
    Entry("norm", "model", ("D",), (Source(("model.norm.weight",), _one("D")),)),
    Entry("lm_head", "model", ("V", "D"), (
        Source(("lm_head.weight",), _one("V", "D")),
        Source(("model.embed_tokens.weight",), _one("V", "D"), when=lambda c: c.tie_word_embeddings),
    )),
    Entry("layers.{i}.input_layernorm", "layer", ("D",),
          (Source((L + "input_layernorm.weight",), _one("D")),)),
    Entry("layers.{i}.post_attention_layernorm", "layer", ("D",),
          (Source((L + "post_attention_layernorm.weight",), _one("D")),)),
    Entry("layers.{i}.attn.qkv", "layer", ("QKV", "D"), (Source(
        tuple(L + f"self_attn.{p}_proj.weight" for p in "qkv"),
        (("Hd", "D"), ("KVd", "D"), ("KVd", "D"))),)),
    Entry("layers.{i}.attn.o", "layer", ("D", "Hd"),
          (Source((L + "self_attn.o_proj.weight",), _one("D", "Hd")),)),
    Entry("layers.{i}.moe.router", "moe", ("E", "D"), (Source((FF + "router.weight",), _one("E", "D")),)),
    Entry("layers.{i}.moe.gate_up", "moe", ("E", "2I", "D"), (
        Source((FF + "experts.gate_up_proj",), _one("E", "D", "2I"), _transposed),
        Source((FF + "experts.{e}.gate_proj.weight", FF + "experts.{e}.up_proj.weight"),
               (("I", "D"), ("I", "D")), per_expert=True),
        Source((FF + "experts.gate_up_proj",), _one("E", "D", "2I"), _transposed, dtypes=FP8),  # fbgemm_fp8
        Source((FF + "experts.{e}.gate_proj.weight", FF + "experts.{e}.up_proj.weight"),  # compressed-tensors
               (("I", "D"), ("I", "D")), per_expert=True, dtypes=FP8),
    )),
    Entry("layers.{i}.moe.down", "moe", ("E", "D", "I"), (
        Source((FF + "experts.down_proj",), _one("E", "I", "D"), _transposed),
        Source((FF + "experts.{e}.down_proj.weight",), _one("D", "I"), per_expert=True),
        Source((FF + "experts.down_proj",), _one("E", "I", "D"), _transposed, dtypes=FP8),
        Source((FF + "experts.{e}.down_proj.weight",), _one("D", "I"), per_expert=True, dtypes=FP8),
    )),
    Entry("layers.{i}.moe.gate_up_scale", "moe_fp8", ("E", "2I"), (
        Source((FF + "experts.gate_up_proj_scale",), _one("E", "1", "2I"), _scale_rows),
        Source((FF + "experts.{e}.gate_proj.weight_scale", FF + "experts.{e}.up_proj.weight_scale"),
               (("I", "1"), ("I", "1")), _expert_scale_rows(2), per_expert=True),
    ), dtype="float32"),
    Entry("layers.{i}.moe.down_scale", "moe_fp8", ("E", "D"), (
        Source((FF + "experts.down_proj_scale",), _one("E", "D", "1"), _scale_rows),
        Source((FF + "experts.{e}.down_proj.weight_scale",), _one("D", "1"), _expert_scale_rows(1),
               per_expert=True),
    ), dtype="float32"),
    Entry("layers.{i}.moe.shared_gate_up", "moe", ("2I", "D"), (Source(
        (FF + "shared_expert.gate_proj.weight", FF + "shared_expert.up_proj.weight"),
        (("I", "D"), ("I", "D"))),)),
    Entry("layers.{i}.moe.shared_down", "moe", ("D", "I"),
          (Source((FF + "shared_expert.down_proj.weight",), _one("D", "I")),)),
    Entry("layers.{i}.mlp.gate_up", "dense", ("2Imlp", "D"), (Source(
        (FF + "gate_proj.weight", FF + "up_proj.weight"), (("Imlp", "D"), ("Imlp", "D"))),)),
    Entry("layers.{i}.mlp.down", "dense", ("D", "Imlp"),
          (Source((FF + "down_proj.weight",), _one("D", "Imlp")),)),
)


@dataclass
class _Planned:
    """An engine tensor resolved against a checkpoint: the full HF names it reads, in order."""

    name: str
    shape: tuple[int, ...]
    source: Source
    hf_names: list[str]
    dtype: str | None = None  # the entry's engine dtype (None: the model dtype)
    quantize: bool = False  # expert weights quantized at load: yields name and name + "_scale"

    def key(self) -> tuple:
        return (tuple(self.hf_names), self.source.pieces, self.shape)


def load_text_weights(checkpoint: str | os.PathLike | Checkpoint, config: TextConfig,
                      dtype: str = "bfloat16", progress: bool | None = None,
                      fp8: Fp8Plan | None = None) -> dict[str, torch.Tensor]:
    """All text-decoder tensors in the engine's names/layouts, converted to `dtype`; FP8 experts
    (stored, or quantized at load per `fp8`) as e4m3 + float32 scales."""
    return dict(iter_text_weights(checkpoint, config, dtype, progress, fp8))


def iter_text_weights(checkpoint: str | os.PathLike | Checkpoint, config: TextConfig,
                      dtype: str = "bfloat16", progress: bool | None = None,
                      fp8: Fp8Plan | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Like load_text_weights, one tensor at a time: a consumer that copies each tensor elsewhere
    (e.g. to the GPU) never holds more than one converted tensor in host memory. The whole checkpoint
    is validated (headers only) before the first tensor is yielded."""
    if dtype not in OUT_DTYPES:
        raise ValueError(f"dtype must be one of {list(OUT_DTYPES)}, got {dtype!r}")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    plan = plan_text_weights(ckpt, config, fp8)
    total = sum(ckpt.info(n).nbytes for p in plan for n in p.hf_names)
    show = total > PROGRESS_MIN_BYTES if progress is None else progress
    bar = _Progress(total, ckpt.path) if show else None
    # Built once and shared when two engine tensors read the same source (tied lm_head).
    uses: dict[tuple, int] = {}
    for p in plan:
        uses[p.key()] = uses.get(p.key(), 0) + 1
    shared: dict[tuple, torch.Tensor] = {}
    for p in plan:
        tensors = [ckpt.get(n) for n in p.hf_names]
        if p.quantize:
            q, scale = quantize_experts(p.source.pieces(tensors), p.shape)
            yield p.name, q
            yield p.name + "_scale", scale
        else:
            out = shared.get(p.key())
            if out is None:
                out_dtype = torch.float8_e4m3fn if p.source.fp8 else OUT_DTYPES[p.dtype or dtype]
                out = _assemble(p.source.pieces(tensors), p.shape, out_dtype)
                if uses[p.key()] > 1:
                    shared[p.key()] = out
            yield p.name, out
        if bar:
            bar.advance(sum(t.nbytes for t in tensors))
    if bar:
        bar.close()


def text_root(ckpt: Checkpoint) -> str:
    """"language_model." (Llama4ForConditionalGeneration) or "" (Llama4ForCausalLM)."""
    names = ckpt.keys()
    cond = any(n.startswith(ROOTS["conditional"]) for n in names)
    causal = any(n.startswith("model.") or n == "lm_head.weight" for n in names)
    if cond and causal:
        raise CheckpointError(f"{ckpt.path}: has both 'language_model.*' and 'model.*' tensors; "
                              f"cannot tell ConditionalGeneration from CausalLM")
    if not (cond or causal):
        raise CheckpointError(f"{ckpt.path}: no text-model tensors (expected 'language_model.model.*' "
                              f"or 'model.*')")
    return ROOTS["conditional"] if cond else ROOTS["causal"]


def plan_text_weights(ckpt: Checkpoint, config: TextConfig, fp8: Fp8Plan | None = None) -> list[_Planned]:
    """Resolve TEXT_TABLE against the checkpoint and validate names, shapes and dtypes (no data).
    A MoE layer's experts are FP8 when the checkpoint stores them so (checked against `fp8`'s
    ignore list), or quantized at load when `fp8` says so; otherwise in the model dtype."""
    root = text_root(ckpt)
    dims = _dims(config)
    plan: list[_Planned] = []
    stored_fp8: dict[int, str] = {}  # MoE layer -> the first expert tensor, for layers stored in FP8
    for e, i in _entries(config):
        if e.scope == "moe_fp8" and i not in stored_fp8:
            continue
        p = _resolve(ckpt, root, e, config, dims, i)
        if e.name in EXPERT_WEIGHTS:
            if e.name == EXPERT_WEIGHTS[0] and p.source.fp8:
                stored_fp8[i] = p.hf_names[0]
            elif e.name == EXPERT_WEIGHTS[1] and p.source.fp8 != (i in stored_fp8):
                raise CheckpointError(f"{ckpt.path}: layer {i} mixes FP8 and unquantized expert weights "
                                      f"('{p.hf_names[0]}' is {ckpt.info(p.hf_names[0]).dtype}); the "
                                      f"engine runs a layer's experts all in FP8 or all unquantized")
            p.quantize = (fp8 is not None and not fp8.stored and not p.source.fp8
                          and i not in fp8.skip_layers)
        plan.append(p)
    if fp8 is not None and fp8.stored:
        _check_ignore_list(ckpt, root, config, fp8, plan, stored_fp8)
    for p in plan:
        for name, shape in zip(p.hf_names, _source_shapes(p.source, dims, config)):
            _check_tensor(ckpt.info(name), shape, p.source.dtypes)
    used = {n for p in plan for n in p.hf_names}
    unexpected = sorted(n for n in ckpt.keys() if n not in used and not n.startswith(VISION_PREFIXES))
    if unexpected:
        more = f" (and {len(unexpected) - 5} more)" if len(unexpected) > 5 else ""
        raise CheckpointError(f"{ckpt.path}: unexpected tensor '{unexpected[0]}' for this config "
                              f"(unexpected: {unexpected[:5]}{more}); wrong config.json, or a layer "
                              f"kind (MoE/dense) that disagrees with moe_layers?")
    return plan


def _check_ignore_list(ckpt: Checkpoint, root: str, c: TextConfig, fp8: Fp8Plan,
                       plan: list[_Planned], stored_fp8: dict[int, str]) -> None:
    """A stored-FP8 checkpoint's quantization_config must agree with its tensors: the experts of a
    MoE layer are FP8 exactly when its ignore list (modules_to_not_convert) leaves them quantized."""
    for p in plan:
        if p.name.endswith(".moe.gate_up"):
            i = int(p.name.split(".")[1])
            ff = f"{root}model.layers.{i}.feed_forward.experts"
            modules = ([f"{ff}.{e}.{w}_proj" for e in range(c.num_local_experts) for w in ("gate", "up", "down")]
                       if p.source.per_expert else [ff])
            ignored = [fp8.ignores(m, root) for m in modules]
            if any(ignored) and not all(ignored):
                first = modules[ignored.index(True)]
                raise CheckpointError(f"{ckpt.path}: quantization_config ignores '{first}' but not every "
                                      f"expert of layer {i}; the engine runs a layer's experts all in FP8 "
                                      f"or all unquantized")
            if all(ignored) == (i in stored_fp8):
                name = p.hf_names[0]
                said = "leaves them unquantized (ignore list)" if all(ignored) else "quantizes them"
                raise CheckpointError(f"{ckpt.path}: quantization_config {said}, but layer {i}'s expert "
                                      f"tensor '{name}' is {ckpt.info(name).dtype}")


def quantize_experts(pieces: Sequence[torch.Tensor], shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Expert weights [E, N, K] -> (float8_e4m3fn [E, N, K], float32 scales [E, N]), one scale per
    output channel, with the engine's quantize_fp8_rowwise (no amax bound) on the pieces as stored
    (before any model-dtype conversion). One expert (or one piece) at a time, so the transient copy
    is one expert's weights."""
    E, N, K = shape
    q = torch.empty(shape, dtype=torch.float8_e4m3fn)
    scale = torch.empty((E, N), dtype=torch.float32)
    if len(pieces) == 1:  # one view of the whole tensor (e.g. the transposed fused layout)
        blocks = list(pieces[0].reshape(shape).unbind(0))
    else:  # 2-D blocks stacking along the engine tensor's rows
        blocks = list(pieces)
    q_rows, s_rows = q.view(-1, K), scale.view(-1)
    r = 0
    for b in blocks:
        bq, bs = ops.quantize_fp8_rowwise(b.contiguous())
        q_rows[r:r + b.shape[0]].copy_(bq)
        s_rows[r:r + b.shape[0]].copy_(bs)
        r += b.shape[0]
    assert r == q_rows.shape[0], "table bug: pieces do not fill the expert tensor"
    return q, scale


def _entries(c: TextConfig) -> Iterator[tuple[Entry, int | None]]:
    """(entry, layer) pairs in file-friendly order: model-level first, then layer by layer."""
    for e in TEXT_TABLE:
        if e.scope == "model":
            yield e, None
    for i in range(c.num_hidden_layers):
        kinds = ("layer", "moe", "moe_fp8") if c.is_moe_layer(i) else ("layer", "dense")
        for e in TEXT_TABLE:
            if e.scope in kinds:
                yield e, i


def _resolve(ckpt: Checkpoint, root: str, e: Entry, c: TextConfig, dims: dict,
             i: int | None) -> _Planned:
    """Pick the first source whose first tensor exists (with an accepted dtype, if any does); every
    one of its tensors must then exist."""
    candidates = [s for s in e.sources if s.when(c)]
    present = [s for s in candidates if _expand(s, root, i, c.num_local_experts)[0] in ckpt]
    # Layouts that share names (bf16 vs FP8 experts) differ in dtype: prefer the one that accepts it.
    fits = [s for s in present if ckpt.info(_expand(s, root, i, c.num_local_experts)[0]).dtype in s.dtypes]
    for s in (fits or present)[:1]:
        names = _expand(s, root, i, c.num_local_experts)
        missing = [n for n in names if n not in ckpt]
        if missing:
            raise CheckpointError(f"{ckpt.path}: missing tensor '{missing[0]}' (needed for "
                                  f"'{_fmt(e.name, i)}'; {len(missing)} of its tensors missing)")
        return _Planned(_fmt(e.name, i), tuple(dims[x] for x in e.shape), s, names, e.dtype)
    wanted = " or ".join(f"'{_expand(s, root, i, c.num_local_experts)[0]}'" for s in candidates)
    raise CheckpointError(f"{ckpt.path}: missing tensor {wanted} (needed for '{_fmt(e.name, i)}')")


def _expand(s: Source, root: str, i: int | None, n_experts: int) -> list[str]:
    if not s.per_expert:
        return [root + _fmt(n, i) for n in s.names]
    return [root + _fmt(n, i).replace("{e}", str(e)) for e in range(n_experts) for n in s.names]


def _fmt(name: str, i: int | None) -> str:
    return name if i is None else name.replace("{i}", str(i))


def _source_shapes(s: Source, dims: dict, c: TextConfig) -> list[tuple[int, ...]]:
    shapes = [tuple(dims[x] for x in sh) for sh in s.shapes]
    return shapes * c.num_local_experts if s.per_expert else shapes


def _check_tensor(info: TensorInfo, expected: tuple[int, ...], dtypes: tuple[str, ...]) -> None:
    if info.dtype == "F8_E4M3" and info.dtype not in dtypes:
        raise CheckpointError(f"{info.file}: tensor '{info.name}' is F8_E4M3, but FP8 is supported for "
                              f"the routed experts only")
    if info.dtype not in dtypes:
        raise CheckpointError(f"{info.file}: tensor '{info.name}' has dtype {info.dtype}; expected "
                              f"one of {', '.join(dtypes)}")
    if info.shape != expected:
        raise CheckpointError(f"{info.file}: tensor '{info.name}' has shape {list(info.shape)}, "
                              f"expected {list(expected)} from config.json")


def _assemble(pieces: Sequence[torch.Tensor], shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """One contiguous `dtype` tensor of `shape`; a matching contiguous single piece is returned as is
    (zero-copy). Everything else is written with one copy_ per piece (conversion included)."""
    if len(pieces) == 1:
        src = pieces[0]
        if tuple(src.shape) != shape:  # a per-expert source with E == 1: [D, I] -> [1, D, I]
            src = src.reshape(shape)
        if src.dtype == dtype and src.is_contiguous():
            return src
        out = torch.empty(shape, dtype=dtype)
        out.copy_(src)
        return out
    out = torch.empty(shape, dtype=dtype)
    rows = out.view(-1, shape[-1])  # blocks stack along dim 0: [sum(rows), last dim]
    r = 0
    for p in pieces:
        rows[r:r + p.shape[0]].copy_(p)
        r += p.shape[0]
    assert r == rows.shape[0], "table bug: pieces do not fill the engine tensor"
    return out


class _Progress:
    """A one-line progress bar on stderr (no tqdm dependency)."""

    def __init__(self, total: int, label: str):
        self.total, self.done, self.label = max(total, 1), 0, os.path.basename(label.rstrip("/"))
        self.t0 = self.last = time.monotonic()
        self._draw()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.1 or self.done >= self.total:
            self.last = now
            self._draw()

    def _draw(self) -> None:
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(30 * frac)
        rate = self.done / max(time.monotonic() - self.t0, 1e-9) / 1e9
        sys.stderr.write(f"\rloading {self.label} [{bar:<30}] {100 * frac:5.1f}% "
                         f"{self.done / 1e9:.2f}/{self.total / 1e9:.2f} GB {rate:.2f} GB/s")
        sys.stderr.flush()

    def close(self) -> None:
        self._draw()
        sys.stderr.write("\n")
        sys.stderr.flush()
