"""weights.py on tiny transformers checkpoints: the engine tensors equal the HF parameters in the
contract's layouts (checked by value and by running the HF modules), all checkpoint layouts agree,
dtype conversion, zero-copy views, and one CheckpointError per bad checkpoint."""
from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

import tiny_checkpoints as tc
from llama4_native.config import load_config
from llama4_native.safetensors_io import Checkpoint, CheckpointError
from llama4_native.weights import iter_text_weights, load_text_weights

pytest.importorskip("transformers")

NAMES = list(tc.TINY_CONFIGS)
ROOT = {"conditional": "language_model.", "causal": ""}


def _root(name):
    return ROOT[tc.TINY_CONFIGS[name]["arch"]]


def expected_shapes(t) -> dict[str, tuple]:
    """The engine contract (weights.py docstring), written out independently of the table."""
    D, V, d, E, I, Im = (t.hidden_size, t.vocab_size, t.head_dim, t.num_local_experts,
                         t.intermediate_size, t.intermediate_size_mlp)
    H, KV = t.num_attention_heads, t.num_key_value_heads
    out = {"embed_tokens": (V, D), "norm": (D,), "lm_head": (V, D)}
    for i in range(t.num_hidden_layers):
        p = f"layers.{i}."
        out |= {p + "input_layernorm": (D,), p + "post_attention_layernorm": (D,),
                p + "attn.qkv": ((H + 2 * KV) * d, D), p + "attn.o": (D, H * d)}
        if i in t.moe_layers:
            out |= {p + "moe.router": (E, D), p + "moe.gate_up": (E, 2 * I, D), p + "moe.down": (E, D, I),
                    p + "moe.shared_gate_up": (2 * I, D), p + "moe.shared_down": (D, I)}
        else:
            out |= {p + "mlp.gate_up": (2 * Im, D), p + "mlp.down": (D, Im)}
    return out


def _load(folder, dtype="float32", **kw):
    return load_text_weights(folder, load_config(folder).text, dtype, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_engine_tensors_equal_hf_parameters(tiny_checkpoint, name):
    folder, model = tiny_checkpoint(name)
    t = load_config(folder).text
    w = _load(folder)
    assert {k: tuple(v.shape) for k, v in w.items()} == expected_shapes(t)
    assert all(v.dtype == torch.float32 for v in w.values())
    # row-major, except the fused float experts: Hugging Face's [E, K, N] in place, viewed as [E, N, K]
    for k, v in w.items():
        if k.endswith((".moe.gate_up", ".moe.down")):
            E, N, K = v.shape
            assert v.stride() == (K * N, 1, N), k
        else:
            assert v.is_contiguous(), k
    sd, r = model.state_dict(), _root(name) + "model."
    I = t.intermediate_size
    assert torch.equal(w["embed_tokens"], sd[r + "embed_tokens.weight"])
    assert torch.equal(w["norm"], sd[r + "norm.weight"])
    assert torch.equal(w["lm_head"], sd[_root(name) + "lm_head.weight"])
    for i in range(t.num_hidden_layers):
        p, e = f"{r}layers.{i}.", f"layers.{i}."
        assert torch.equal(w[e + "input_layernorm"], sd[p + "input_layernorm.weight"])
        assert torch.equal(w[e + "post_attention_layernorm"], sd[p + "post_attention_layernorm.weight"])
        qkv = torch.cat([sd[p + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        assert torch.equal(w[e + "attn.qkv"], qkv)
        assert torch.equal(w[e + "attn.o"], sd[p + "self_attn.o_proj.weight"])
        f = p + "feed_forward."
        if i in t.moe_layers:
            gu, dn = sd[f + "experts.gate_up_proj"], sd[f + "experts.down_proj"]  # [E,D,2I], [E,I,D]
            for x in range(t.num_local_experts):
                assert torch.equal(w[e + "moe.gate_up"][x, :I], gu[x, :, :I].T)  # gate rows
                assert torch.equal(w[e + "moe.gate_up"][x, I:], gu[x, :, I:].T)  # up rows
                assert torch.equal(w[e + "moe.down"][x], dn[x].T)
            # a few transposes by value: engine[e, out, in] == hf[e, in, out]
            for x, o, c in ((0, 0, 5), (1, I + 3, 17), (3, 2 * I - 1, 63)):
                assert w[e + "moe.gate_up"][x, o, c] == gu[x, c, o]
            for x, o, c in ((2, 7, 1), (3, 63, I - 1)):
                assert w[e + "moe.down"][x, o, c] == dn[x, c, o]
            assert torch.equal(w[e + "moe.router"], sd[f + "router.weight"])
            sg = torch.cat([sd[f + "shared_expert.gate_proj.weight"], sd[f + "shared_expert.up_proj.weight"]])
            assert torch.equal(w[e + "moe.shared_gate_up"], sg)
            assert torch.equal(w[e + "moe.shared_down"], sd[f + "shared_expert.down_proj.weight"])
        else:
            gu = torch.cat([sd[f + "gate_proj.weight"], sd[f + "up_proj.weight"]])
            assert torch.equal(w[e + "mlp.gate_up"], gu)
            assert torch.equal(w[e + "mlp.down"], sd[f + "down_proj.weight"])


def _moe_reference(w: dict, i: int, t, x: torch.Tensor) -> torch.Tensor:
    """LLAMA4.md §2.6 on engine tensors. x: [T, D] fp32."""
    I, p = t.intermediate_size, f"layers.{i}.moe."
    logits = x @ w[p + "router"].T  # [T, E]
    top = logits.topk(t.num_experts_per_tok, dim=-1).indices
    score = torch.zeros_like(logits).scatter(1, top, torch.sigmoid(logits.gather(1, top)))
    sgu = x @ w[p + "shared_gate_up"].T  # [T, 2I]: gate | up
    out = (F.silu(sgu[:, :I]) * sgu[:, I:]) @ w[p + "shared_down"].T
    for e in range(t.num_local_experts):
        gu = (x * score[:, e:e + 1]) @ w[p + "gate_up"][e].T  # score scales the expert INPUT
        out = out + (F.silu(gu[:, :I]) * gu[:, I:]) @ w[p + "down"][e].T
    return out


@pytest.mark.parametrize("name", ["scout", "maverick"])
def test_engine_layouts_reproduce_hf_modules(tiny_checkpoint, name):
    """Running the HF MoE / dense MLP / q,k,v projections equals the same math on engine tensors."""
    folder, model = tiny_checkpoint(name)
    t = load_config(folder).text
    w = _load(folder)
    layers = model.language_model.model.layers
    x = torch.randn(7, t.hidden_size, generator=torch.Generator().manual_seed(1))
    H, KV, d = t.num_attention_heads, t.num_key_value_heads, t.head_dim
    with torch.no_grad():
        for i, layer in enumerate(layers):
            ff = layer.feed_forward
            if i in t.moe_layers:
                ref = _moe_reference(w, i, t, x)
                torch.testing.assert_close(ff(x)[0], ref, rtol=1e-5, atol=1e-5)
            else:
                Im = t.intermediate_size_mlp
                gu = x @ w[f"layers.{i}.mlp.gate_up"].T
                ref = (F.silu(gu[:, :Im]) * gu[:, Im:]) @ w[f"layers.{i}.mlp.down"].T
                torch.testing.assert_close(ff(x), ref, rtol=1e-5, atol=1e-5)
            q, k, v = (x @ w[f"layers.{i}.attn.qkv"].T).split([H * d, KV * d, KV * d], dim=-1)
            a = layer.self_attn
            torch.testing.assert_close(q, a.q_proj(x))
            torch.testing.assert_close(k, a.k_proj(x))
            torch.testing.assert_close(v, a.v_proj(x))


@pytest.mark.parametrize("name", ["scout", "maverick_text"])
def test_single_sharded_and_per_expert_layouts_agree(tiny_checkpoint, tmp_path, name):
    folder, _ = tiny_checkpoint(name)
    per_expert = tc.to_per_expert(folder, tmp_path / "per_expert")
    variants = {"sharded": tc.to_sharded(folder, tmp_path / "sharded", 3),
                "per_expert": per_expert,
                "per_expert_sharded": tc.to_sharded(per_expert, tmp_path / "pes", 2)}
    keys = Checkpoint(per_expert).keys()
    assert any(".experts.3.up_proj.weight" in k for k in keys)
    assert not any(k.endswith("experts.gate_up_proj") for k in keys)
    ref = _load(folder)
    for label, path in variants.items():
        got = _load(path)
        assert got.keys() == ref.keys(), label
        for k in ref:
            assert torch.equal(got[k], ref[k]), (label, k)


@pytest.mark.parametrize("name", ["scout_text", "maverick"])
def test_bfloat16_conversion(tiny_checkpoint, name):
    folder, _ = tiny_checkpoint(name)
    f32, b16 = _load(folder), _load(folder, "bfloat16")
    assert f32.keys() == b16.keys()
    for k in f32:
        assert b16[k].dtype == torch.bfloat16 and b16[k].stride() == f32[k].stride(), k  # converted in place
        assert torch.equal(b16[k], f32[k].to(torch.bfloat16)), k


@pytest.mark.parametrize("src_dtype", [torch.bfloat16, torch.float16])
def test_half_precision_sources(tiny_checkpoint, tmp_path, src_dtype):
    folder, _ = tiny_checkpoint("maverick")
    tensors = {k: v.to(src_dtype) for k, v in tc.read_tensors(folder).items()}
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    tc.write_single(tensors, tmp_path)
    f32 = _load(tmp_path, "float32")
    b16 = _load(tmp_path, "bfloat16")
    ref = {k: v.float() for k, v in _load(folder).items()}
    for k in f32:
        assert f32[k].dtype == torch.float32 and b16[k].dtype == torch.bfloat16
        assert torch.equal(f32[k], ref[k].to(src_dtype).float()), k
        assert torch.equal(b16[k], ref[k].to(src_dtype).to(torch.bfloat16)), k


DIRECT = ("embed_tokens", "norm", "lm_head", "layers.1.input_layernorm", "layers.1.attn.o",
          "layers.1.moe.router", "layers.1.moe.shared_down", "layers.0.mlp.down",
          "layers.1.moe.gate_up", "layers.1.moe.down")  # the fused experts: in place, transposed views
BUILT = ("layers.0.attn.qkv", "layers.0.mlp.gate_up")


def _inside(t: torch.Tensor, ck: Checkpoint) -> bool:
    lo, hi = ck.files[0].address_range()
    return lo <= t.data_ptr() and t.data_ptr() + t.nbytes <= hi


def test_matching_dtype_is_zero_copy(tiny_checkpoint):
    """fp32 file loaded as float32: directly-mapped tensors point at their bytes in the mmap."""
    folder, _ = tiny_checkpoint("maverick")
    ck = Checkpoint(folder)
    w = load_text_weights(ck, load_config(folder).text, "float32")
    base = ck.files[0].address_range()[0]
    for k in DIRECT:
        assert w[k].data_ptr() == base + ck.info(HF_NAME[k]).start, k
    for k in BUILT:  # concatenated: new memory
        assert not _inside(w[k], ck), k
    b16 = load_text_weights(ck, load_config(folder).text, "bfloat16")
    assert not any(_inside(v, ck) for v in b16.values())  # converted: copies


# HF names of the directly-mapped engine tensors in DIRECT (maverick: layer 1 MoE, layer 0 dense).
HF_NAME = {k: "language_model." + v for k, v in {
    "embed_tokens": "model.embed_tokens.weight", "norm": "model.norm.weight",
    "lm_head": "lm_head.weight",
    "layers.1.input_layernorm": "model.layers.1.input_layernorm.weight",
    "layers.1.attn.o": "model.layers.1.self_attn.o_proj.weight",
    "layers.1.moe.router": "model.layers.1.feed_forward.router.weight",
    "layers.1.moe.shared_down": "model.layers.1.feed_forward.shared_expert.down_proj.weight",
    "layers.0.mlp.down": "model.layers.0.feed_forward.down_proj.weight",
    "layers.1.moe.gate_up": "model.layers.1.feed_forward.experts.gate_up_proj",
    "layers.1.moe.down": "model.layers.1.feed_forward.experts.down_proj"}.items()}


def test_tied_lm_head_is_the_embedding(tiny_checkpoint):
    folder, model = tiny_checkpoint("tied_text")
    assert "lm_head.weight" not in Checkpoint(folder)
    w = _load(folder)
    assert w["lm_head"].data_ptr() == w["embed_tokens"].data_ptr()
    assert torch.equal(w["lm_head"], model.lm_head.weight)
    b16 = _load(folder, "bfloat16")  # converted once, shared
    assert b16["lm_head"].data_ptr() == b16["embed_tokens"].data_ptr()


def test_iter_matches_load_and_progress(tiny_checkpoint, capsys):
    folder, _ = tiny_checkpoint("scout_text")
    t = load_config(folder).text
    quiet = _load(folder)
    assert capsys.readouterr().err == ""  # tiny: no bar by default
    it = dict(iter_text_weights(folder, t, "float32", progress=True))
    err = capsys.readouterr().err
    assert "loading" in err and "100.0%" in err and err.endswith("\n")
    assert it.keys() == quiet.keys() and all(torch.equal(it[k], quiet[k]) for k in it)


def test_bad_dtype_argument(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    with pytest.raises(ValueError, match="dtype"):
        _load(folder, "float16")


# ------------------------------------------------------------------------------------------------
# Bad checkpoints: each mutation is written to a fresh folder with the original config.json
# ------------------------------------------------------------------------------------------------

L1 = "model.layers.1."


def _mutated(folder, dst, edit):
    tensors = tc.read_tensors(folder)
    edit(tensors)
    dst.mkdir(exist_ok=True)
    shutil.copy(folder / "config.json", dst / "config.json")
    tc.write_single(tensors, dst)
    return dst


def _drop(name):
    return lambda t: t.pop(name)


def _set(name, value_fn):
    def edit(t):
        t[name] = value_fn(t)
    return edit


BAD = [
    ("missing", "scout", _drop("language_model." + L1 + "self_attn.k_proj.weight"),
     "missing tensor 'language_model.model.layers.1.self_attn.k_proj.weight'"),
    ("missing_lm_head", "maverick_text", _drop("lm_head.weight"), "missing tensor 'lm_head.weight'"),
    ("missing_shared", "maverick",
     _drop("language_model." + L1 + "feed_forward.shared_expert.up_proj.weight"),
     "shared_expert.up_proj.weight"),
    ("unexpected", "scout",
     _set("language_model." + L1 + "self_attn.q_norm.weight", lambda t: torch.ones(24)),
     "unexpected tensor 'language_model.model.layers.1.self_attn.q_norm.weight'"),
    ("unexpected_outside", "scout", _set("extra_head.weight", lambda t: torch.ones(3)),
     "unexpected tensor 'extra_head.weight'"),
    ("unexpected_dense_in_moe", "maverick_text",
     _set(L1 + "feed_forward.gate_proj.weight", lambda t: torch.ones(80, 64)), "unexpected tensor"),
    ("shape", "maverick_text",
     _set(L1 + "self_attn.k_proj.weight", lambda t: t[L1 + "self_attn.k_proj.weight"].T),
     "has shape [64, 48], expected [48, 64]"),
    ("fused_expert_layout", "scout_text",
     _set(L1 + "feed_forward.experts.gate_up_proj",
          lambda t: t[L1 + "feed_forward.experts.gate_up_proj"].transpose(1, 2)),
     "'model.layers.1.feed_forward.experts.gate_up_proj' has shape [4, 40, 64], expected [4, 64, 40]"),
    ("int_dtype", "scout_text", _set("model.norm.weight", lambda t: torch.ones(64, dtype=torch.int32)),
     "tensor 'model.norm.weight' has dtype I32"),
    ("bool_dtype", "scout_text", _set("model.layers.0.input_layernorm.weight",
                                      lambda t: torch.ones(64, dtype=torch.bool)), "has dtype BOOL"),
    ("fp8", "maverick", _set("language_model." + L1 + "feed_forward.experts.down_proj",
                             lambda t: t["language_model." + L1 + "feed_forward.experts.down_proj"]
                             .to(torch.float8_e4m3fn)), "layer 1 mixes FP8 and unquantized expert weights"),
    ("both_prefixes", "scout", _set("model.norm.weight", lambda t: torch.ones(64)), "cannot tell"),
]


@pytest.mark.parametrize("base,edit,message", [(b, e, m) for _, b, e, m in BAD], ids=[n for n, *_ in BAD])
def test_bad_checkpoint(tiny_checkpoint, tmp_path, base, edit, message):
    folder, _ = tiny_checkpoint(base)
    bad = _mutated(folder, tmp_path / "bad", edit)
    with pytest.raises(CheckpointError) as ei:
        _load(bad)
    assert message in str(ei.value)


def test_vision_tensors_are_left_alone(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("scout")
    bad = _mutated(folder, tmp_path / "v", _set("vision_model.some_future.weight", lambda t: torch.ones(2)))
    assert len(_load(bad)) == len(expected_shapes(load_config(folder).text))


def test_per_expert_missing_one_expert(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("maverick_text")
    pe = tc.to_per_expert(folder, tmp_path / "pe")
    bad = _mutated(pe, tmp_path / "bad", _drop("model.layers.3.feed_forward.experts.2.up_proj.weight"))
    with pytest.raises(CheckpointError,
                       match=r"missing tensor 'model.layers.3.feed_forward.experts.2.up_proj"):
        _load(bad)


def test_wrong_config_for_checkpoint(tiny_checkpoint):
    """Maverick's dense layer 0 under Scout's all-MoE config: the router is missing."""
    scout, _ = tiny_checkpoint("scout")
    maverick, _ = tiny_checkpoint("maverick")
    with pytest.raises(CheckpointError, match=r"layers.0.feed_forward.router.weight"):
        load_text_weights(maverick, load_config(scout).text, "float32")


def test_sharded_checkpoint_with_missing_shard(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("maverick_text")
    sh = tc.to_sharded(folder, tmp_path / "sh", 3)
    (sh / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match="shard 'model-00002-of-00003.safetensors'"):
        _load(sh)


def test_tiny_models_decode_non_constant(tiny_checkpoint):
    """The fixtures are useful for parity only if greedy decoding is not degenerate."""
    for name in NAMES:
        _, model = tiny_checkpoint(name)
        ids = torch.tensor([[1, 5, 9, 33, 100, 7, 8, 200, 300, 11, 12, 13]])
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=None,
                                 pad_token_id=0)
        assert len(set(out[0, 12:].tolist())) >= 4, (name, out[0, 12:].tolist())


@pytest.mark.parametrize("name", ["scout", "maverick"])
def test_tiny_vision_config_runs_an_image(tiny_checkpoint, name):
    """The tiny vision_config satisfies HF's implicit constraints: a 1-tile image (4 <|patch|>
    tokens) runs and changes the logits."""
    _, model = tiny_checkpoint(name)
    cfg = tc.IMAGE_IDS
    ids = [1, cfg["boi_token_index"]] + [cfg["image_token_index"]] * 4 + [cfg["eoi_token_index"], 5]
    ids = torch.tensor([ids])
    with torch.no_grad():
        with_image = model(input_ids=ids, pixel_values=torch.randn(1, 3, 56, 56)).logits
        text_only = model(input_ids=ids).logits
    assert with_image.shape == (1, 8, 512)
    assert (with_image - text_only).abs().max() > 1e-3
