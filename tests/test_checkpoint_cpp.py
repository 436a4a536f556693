"""The C++ checkpoint loader (llama4/checkpoint.h) through its one call, `_C.load_checkpoint`:
weights equal to a plain-torch rebuild from the files read by the `safetensors` package (an
independent reader), config and generation config equal to the JSON files, FP8 checkpoints, and
hostile files: every truncation, header damage, bad JSON, missing tensor, wrong shape or unknown
dtype raises a typed exception (CheckpointError / ConfigError) naming the file and the tensor or
field — never a crash."""
from __future__ import annotations

import gc
import json
import random
import shutil
import struct
from pathlib import Path

import pytest
import torch

import fp8_checkpoints as fc
import llama4_native as l4
import tiny_checkpoints as tc
from llama4_native import _C

pytest.importorskip("transformers")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load(folder, dtype="bfloat16", **kw):
    return _C.load_checkpoint(str(folder), dtype, **kw)


def as_torch(weights: dict) -> dict[str, torch.Tensor]:
    return {k: torch.from_dlpack(v) for k, v in weights.items()}


# ---- independent reference: the engine layout rebuilt in torch from the safetensors package ----

def reference_text(tensors: dict, text: dict, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    root = "language_model." if any(k.startswith("language_model.") for k in tensors) else ""
    t = {k[len(root):]: v for k, v in tensors.items() if k.startswith(root)}
    cat = torch.cat
    out = {"embed_tokens": t["model.embed_tokens.weight"], "norm": t["model.norm.weight"],
           "lm_head": t.get("lm_head.weight", t["model.embed_tokens.weight"])}
    for i in range(text["num_hidden_layers"]):
        L, F = f"model.layers.{i}.", f"model.layers.{i}.feed_forward."
        e = f"layers.{i}."
        out[e + "input_layernorm"] = t[L + "input_layernorm.weight"]
        out[e + "post_attention_layernorm"] = t[L + "post_attention_layernorm.weight"]
        out[e + "attn.qkv"] = cat([t[L + f"self_attn.{p}_proj.weight"] for p in "qkv"])
        out[e + "attn.o"] = t[L + "self_attn.o_proj.weight"]
        if i in text["moe_layers"]:
            out[e + "moe.router"] = t[F + "router.weight"]
            # HF fused experts compute x @ W: [E, D, 2I] / [E, I, D] -> nn.Linear [E, out, in].
            out[e + "moe.gate_up"] = t[F + "experts.gate_up_proj"].transpose(1, 2)
            out[e + "moe.down"] = t[F + "experts.down_proj"].transpose(1, 2)
            out[e + "moe.shared_gate_up"] = cat([t[F + f"shared_expert.{p}_proj.weight"] for p in ("gate", "up")])
            out[e + "moe.shared_down"] = t[F + "shared_expert.down_proj.weight"]
        else:
            out[e + "mlp.gate_up"] = cat([t[F + f"{p}_proj.weight"] for p in ("gate", "up")])
            out[e + "mlp.down"] = t[F + "down_proj.weight"]
    return {k: v.to(dtype) for k, v in out.items()}


def reference_vision(tensors: dict, layers: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    V = "vision_model."
    out = {"patch_embedding": tensors[V + "patch_embedding.linear.weight"],
           "class_embedding": tensors[V + "class_embedding"],
           "positional_embedding": tensors[V + "positional_embedding_vlm"],
           "adapter.fc1.weight": tensors[V + "vision_adapter.mlp.fc1.weight"],
           "adapter.fc2.weight": tensors[V + "vision_adapter.mlp.fc2.weight"],
           "projector.weight": tensors["multi_modal_projector.linear_1.weight"]}
    for w in ("pre", "post"):
        for p in ("weight", "bias"):
            out[f"layernorm_{w}.{p}"] = tensors[f"{V}layernorm_{w}.{p}"]
    for i in range(layers):
        L = f"{V}model.layers.{i}."
        for p in ("weight", "bias"):
            for n in ("input_layernorm", "post_attention_layernorm"):
                out[f"layers.{i}.{n}.{p}"] = tensors[f"{L}{n}.{p}"]
            out[f"layers.{i}.attn.qkv.{p}"] = torch.cat([tensors[f"{L}self_attn.{x}_proj.{p}"] for x in "qkv"])
            out[f"layers.{i}.attn.o.{p}"] = tensors[f"{L}self_attn.o_proj.{p}"]
            out[f"layers.{i}.mlp.fc1.{p}"] = tensors[f"{L}mlp.fc1.{p}"]
            out[f"layers.{i}.mlp.fc2.{p}"] = tensors[f"{L}mlp.fc2.{p}"]
    return {k: v.to(dtype) for k, v in out.items()}


def assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        assert torch.equal(got[k], want[k]), k


def text_section(folder) -> dict:
    d = json.loads((Path(folder) / "config.json").read_text())
    return d.get("text_config", d)


@pytest.mark.parametrize("name", ["maverick", "scout_text", "tied_text"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_one_call_loads_text_weights_like_torch(tiny_checkpoint, name, dtype):
    folder, _ = tiny_checkpoint(name)
    ck = load(folder, dtype)
    text = text_section(folder)
    text = dict(text, moe_layers=list(ck.config.text.moe_layers))
    want = reference_text(tc.read_tensors(folder), text, DTYPES[dtype])
    assert_same(as_torch(ck.text_weights), want)
    assert ck.config == l4.config.load_config(folder) and ck.fp8 is None and ck.fp8_layers == []
    assert ck.vision_weights == {}


def test_vision_tower_and_sharded_per_expert_layout(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("maverick")
    variant = tc.to_sharded(tc.to_per_expert(folder, tmp_path / "pe"), tmp_path / "sharded", n_shards=3)
    ck = load(variant, "float32", vision=True)
    tensors = tc.read_tensors(folder)  # the fused original: the per-expert split must undo exactly
    text = dict(text_section(folder), moe_layers=list(ck.config.text.moe_layers))
    assert_same(as_torch(ck.text_weights), reference_text(tensors, text, torch.float32))
    vision_layers = ck.config.vision.num_hidden_layers
    assert_same(as_torch(ck.vision_weights), reference_vision(tensors, vision_layers, torch.float32))
    assert len(ck.checkpoint.files) == 3


def test_config_and_generation_config_follow_the_files(tmp_path):
    from llama4_native.tiny import make_tiny

    folder = Path(make_tiny(tmp_path / "t", dtype="bfloat16", processor_files=False))
    ck = load(folder)
    cfg = json.loads((folder / "config.json").read_text())
    gen = json.loads((folder / "generation_config.json").read_text())
    t = cfg["text_config"]
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "head_dim", "num_local_experts",
                "attention_chunk_size", "floor_scale", "attn_scale", "rms_norm_eps", "max_position_embeddings"):
        assert getattr(ck.config.text, key) == t[key], key
    assert list(ck.config.text.no_rope_layers) == t["no_rope_layers"]
    assert ck.config.text.rope_type == "llama3" and ck.config.text.rope_factor == t["rope_scaling"]["factor"]
    assert ck.config.vision.image_size == cfg["vision_config"]["image_size"]
    assert ck.config.image_token_index == cfg["image_token_index"]
    assert ck.generation_config.to_dict() == gen
    # No generation_config.json: an empty one, not an error.
    (folder / "generation_config.json").unlink()
    assert load(folder).generation_config.to_dict() == {}


def test_fp8_checkpoint_and_quantization_at_load(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("scout")
    fb = fc.to_fbgemm_fp8(folder, tmp_path / "fb", activation_scale_ub=900.0)
    ck = load(fb)
    stored = tc.read_tensors(fb)
    n_layers = ck.config.text.num_hidden_layers
    assert ck.fp8.method == "fbgemm_fp8" and ck.config.text.moe_fp8_activation_scale_ub == 900.0
    assert ck.fp8_layers == list(range(n_layers))
    w = as_torch(ck.text_weights)
    for i in range(n_layers):
        X = f"language_model.model.layers.{i}.feed_forward.experts."
        want = stored[X + "gate_up_proj"].transpose(1, 2).contiguous().view(torch.uint8)
        assert torch.equal(w[f"layers.{i}.moe.gate_up"].view(torch.uint8), want)
        assert torch.equal(w[f"layers.{i}.moe.down_scale"], stored[X + "down_proj_scale"].flatten(1))
    # The bf16 original quantized at load skips the layers asked for, and bounds at 1200.
    q = load(folder, quantization="fp8", fp8_skip_layers=[0, -1])
    assert q.fp8_layers == list(range(1, n_layers - 1))
    assert q.config.text.moe_fp8_activation_scale_ub == 1200.0


def test_weights_outlive_the_loaded_checkpoint(tiny_checkpoint):
    folder, _ = tiny_checkpoint("maverick")
    ck = load(folder, "float32")  # float32 on a float32 file: zero-copy views of the mapping
    weights = as_torch(ck.text_weights)
    want = weights["embed_tokens"].clone()
    del ck
    gc.collect()
    assert torch.equal(weights["embed_tokens"], want)


def test_progress_reports_every_byte_and_its_errors_propagate(tiny_checkpoint):
    folder, _ = tiny_checkpoint("maverick")
    seen = []
    load(folder, progress=lambda done, total: seen.append((done, total)))
    text_bytes = sum(t.numel() * t.element_size() for k, t in tc.read_tensors(folder).items()
                     if k.startswith("language_model."))
    assert seen[-1] == (text_bytes, text_bytes)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop("stop")

    with pytest.raises(Stop):
        load(folder, progress=stop)


# ---- hostile files ---------------------------------------------------------------------------------

def read_header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_header(path: Path, header: dict, data: bytes) -> None:
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def edit_header(fn):
    def apply(folder: Path) -> None:
        f = folder / "model.safetensors"
        header, data = read_header(f)
        fn(header)
        write_header(f, header, data)
    return apply


def edit_config(fn, name="config.json"):
    def apply(folder: Path) -> None:
        d = json.loads((folder / name).read_text())
        fn(d)
        (folder / name).write_text(json.dumps(d))
    return apply


def edit_tensors(fn):
    def apply(folder: Path) -> None:
        t = tc.read_tensors(folder)
        fn(t)
        tc.write_single(t, folder)
    return apply


def truncate(fraction):
    def apply(folder: Path) -> None:
        f = folder / "model.safetensors"
        data = f.read_bytes()
        f.write_bytes(data[: int(len(data) * fraction)])
    return apply


def replace_bytes(at: int, new: bytes):
    def apply(folder: Path) -> None:
        f = folder / "model.safetensors"
        data = bytearray(f.read_bytes())
        data[at:at + len(new)] = new
        f.write_bytes(bytes(data))
    return apply


def drop_shard(folder: Path) -> None:
    tc.to_sharded(folder, folder / "s", n_shards=2)
    (folder / "model.safetensors").unlink()
    for f in (folder / "s").iterdir():
        shutil.move(str(f), folder / f.name)
    (folder / "model-00002-of-00002.safetensors").unlink()


LAYER0 = "language_model.model.layers.0."
O_PROJ = LAYER0 + "self_attn.o_proj.weight"
NORM0, NORM1 = LAYER0 + "input_layernorm.weight", "language_model.model.layers.1.input_layernorm.weight"

# (case, edit of a copy of the tiny "maverick" checkpoint, exception, file, text in the message)
HOSTILE = [
    ("truncated", truncate(0.5), "CheckpointError", "model.safetensors", "past the end of the file"),
    ("tiny file", truncate(0.0000001), "CheckpointError", "model.safetensors", "too small"),
    ("header length past EOF", replace_bytes(0, struct.pack("<Q", 1 << 40)), "CheckpointError",
     "model.safetensors", "runs past the end of the file"),
    ("header not JSON", replace_bytes(8, b"{\"a\":]"), "CheckpointError", "model.safetensors", "not valid JSON"),
    ("unknown dtype", edit_header(lambda h: h[O_PROJ].update(dtype="F64")), "CheckpointError",
     "model.safetensors", f"tensor '{O_PROJ}': unknown dtype 'F64'"),
    ("shape disagrees with offsets", edit_header(lambda h: h[O_PROJ].update(shape=[3, 3])), "CheckpointError",
     "model.safetensors", f"tensor '{O_PROJ}': shape [3, 3] x F32 needs 36 bytes"),
    ("overlapping tensors", edit_header(lambda h: h[NORM1].update(data_offsets=h[NORM0]["data_offsets"])),
     "CheckpointError", "model.safetensors", "overlaps"),
    ("offsets past the end", edit_header(lambda h: h[NORM0].update(data_offsets=[1 << 40, (1 << 40) + 256])),
     "CheckpointError", "model.safetensors", "past the end of the file"),
    ("missing tensor", edit_tensors(lambda t: t.pop(O_PROJ)), "CheckpointError", "tiny", f"missing tensor '{O_PROJ}'"),
    ("wrong shape", edit_config(lambda d: d["text_config"].update(intermediate_size_mlp=96)), "CheckpointError",
     "model.safetensors", "feed_forward.gate_proj.weight' has shape [80, 64], expected [96, 64] from config.json"),
    ("unexpected tensor", edit_tensors(lambda t: t.update({LAYER0 + "extra.weight": torch.zeros(2)})),
     "CheckpointError", "tiny", f"unexpected tensor '{LAYER0}extra.weight'"),
    ("FP8 outside the experts", edit_tensors(lambda t: t.update({O_PROJ: t[O_PROJ].to(torch.float8_e4m3fn)})),
     "CheckpointError", "model.safetensors", "FP8 is supported for the routed experts only"),
    ("missing shard", drop_shard, "CheckpointError", "model.safetensors.index.json", "is missing"),
    ("config not JSON", lambda f: (f / "config.json").write_text('{"model_type": "llama4",'), "ConfigError",
     "config.json", "invalid JSON"),
    ("config field type", edit_config(lambda d: d["text_config"].update(hidden_size="64")), "ConfigError",
     "config.json", "text_config.hidden_size"),
    ("no config", lambda f: (f / "config.json").unlink(), "ConfigError", "config.json", "cannot read"),
    ("generation config field", edit_config(lambda d: d.update(eos_token_id="abc"), "generation_config.json"),
     "ConfigError", "generation_config.json", "eos_token_id"),
]


@pytest.fixture
def hostile_copy(tiny_checkpoint, tmp_path):
    src, _ = tiny_checkpoint("maverick")
    dst = tmp_path / "tiny"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("case,edit,error,file,message", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_checkpoint_raises_a_typed_error(hostile_copy, case, edit, error, file, message):
    edit(hostile_copy)
    with pytest.raises(getattr(l4, error)) as info:
        load(hostile_copy, "float32")
    text = str(info.value)
    assert file in text and message in text, text
    assert isinstance(info.value, ValueError)
    if error == "ConfigError":
        assert info.value.file.endswith(file)
        if "field" in case:
            assert message in info.value.field


def test_error_classes():
    assert l4.CheckpointError is _C.CheckpointError and l4.ConfigError is _C.ConfigError
    assert issubclass(l4.CheckpointError, ValueError) and issubclass(l4.ConfigError, ValueError)
    with pytest.raises(l4.ConfigError) as info:
        _C.parse_model_config('{"model_type": "llama4", "text_config": {"head_dim": 7}}', "mem.json")
    assert (info.value.field, info.value.file) == ("text_config.head_dim", "mem.json")


def test_every_truncation_is_an_error(hostile_copy):
    """Cut the file inside the length field, around the header's end, at a spread of lengths through
    the header and the data, one byte short: each one is a CheckpointError, never a crash or a
    silent partial load."""
    f = hostile_copy / "model.safetensors"
    data = f.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    rng = random.Random(0)
    lengths = (list(range(0, 10)) + list(range(8 + n - 2, 8 + n + 3)) + rng.sample(range(10, 8 + n), 300)
               + rng.sample(range(8 + n + 3, len(data)), 300) + [len(data) - 1])
    for length in lengths:
        f.write_bytes(data[:length])
        with pytest.raises(l4.CheckpointError):
            load(hostile_copy, "float32")


def test_header_byte_damage_never_crashes(hostile_copy):
    """Random bytes written into the header: the load either succeeds (a harmless change, e.g. in
    the metadata) or raises CheckpointError — never a crash or another exception type."""
    f = hostile_copy / "model.safetensors"
    data = f.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    rng = random.Random(1)
    errors = 0
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            damaged[8 + rng.randrange(n)] = rng.randrange(256)
        f.write_bytes(bytes(damaged))
        try:
            load(hostile_copy, "float32")
        except l4.CheckpointError:
            errors += 1
    assert errors > 250  # almost every change breaks the JSON, a name, a shape or an offset
