"""load(..., check_weights=True) and Checkpoint.check_finite(): every floating-point tensor as
stored (F32, BF16, F16, F8_E4M3) is scanned for NaN and infinity, and the first one (tensors in
name order, then the flat index) is a CheckpointError naming the file, the tensor, the value and
the index. The expected index comes from torch.isfinite on the same tensors."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import llama4_native as l4
import tiny_checkpoints as tc
from llama4_native import _C

# Tensors of more than one 64 KiB scan block (the scan works per block), odd sizes.
SHAPES = {"a.first": (3, 5), "b.large": (301, 419), "c.last": (70_001,)}


def write(path, dtype: torch.dtype, poison: dict[str, list[tuple[int, float]]]) -> dict:
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for name, shape in SHAPES.items():
        t = torch.randn(shape, generator=gen).clamp(-400, 400).to(dtype)
        flat = t.view(-1)
        for index, value in poison.get(name, []):
            flat[index] = value
        tensors[name] = t
    tensors["z.ids"] = torch.tensor([-1, 2**62], dtype=torch.int64)  # integers are never checked
    save_file(tensors, str(path))
    return tensors


def expected(tensors: dict) -> tuple[str, int, str] | None:
    for name in sorted(tensors):
        t = tensors[name]
        if not t.is_floating_point():
            continue
        bad = (~torch.isfinite(t.float().view(-1))).nonzero()
        if len(bad):
            i = int(bad[0])
            v = float(t.view(-1)[i].float())
            return name, i, "NaN" if v != v else ("+inf" if v > 0 else "-inf")
    return None


DTYPES = [(torch.float32, "F32"), (torch.bfloat16, "BF16"), (torch.float16, "F16"),
          (torch.float8_e4m3fn, "F8_E4M3")]


@pytest.mark.parametrize("dtype, st_name", DTYPES)
@pytest.mark.parametrize("case", ["clean", "nan-late-block", "two-blocks", "first-tensor", "inf", "-inf"])
def test_first_non_finite_is_named(tmp_path, dtype, st_name, case):
    inf = float("nan") if dtype == torch.float8_e4m3fn else float("inf")  # e4m3fn has no infinity
    poison = {"clean": {},
              "nan-late-block": {"b.large": [(301 * 419 - 2, float("nan"))]},
              "two-blocks": {"c.last": [(70_000, inf), (40_000, float("nan"))],
                             "b.large": [(100_000, float("nan")), (33_000, -inf)]},
              "first-tensor": {"a.first": [(14, float("nan"))], "c.last": [(0, float("nan"))]},
              "inf": {"c.last": [(65_536 // dtype.itemsize, inf)]},  # the first element of a block
              "-inf": {"b.large": [(65_536 // dtype.itemsize - 1, -inf)]}}[case]  # the last of one
    path = tmp_path / "w.safetensors"
    tensors = write(path, dtype, poison)
    ck = _C.Checkpoint(str(path))
    want = expected(tensors)
    if want is None:
        ck.check_finite()
        return
    name, index, what = want
    msg = (f"{path}: tensor '{name}' holds {what} at element {index} (flat index, {st_name}, "
           f"{tensors[name].numel()} elements)")
    with pytest.raises(l4.CheckpointError) as e:
        ck.check_finite()
    assert str(e.value) == msg


def test_load_with_check_weights_names_the_poisoned_tensor(tmp_path):
    tc.save_tiny("scout_text", tmp_path)
    f = tmp_path / "model.safetensors"
    tensors = load_file(str(f))
    name = next(n for n in tensors if n.endswith("layers.0.self_attn.q_proj.weight"))
    l4.load(tmp_path, dtype="float32", check_weights=True)  # clean: loads
    tensors[name].view(-1)[7] = float("inf")
    save_file(tensors, str(f), metadata={"format": "pt"})
    model = l4.load(tmp_path, dtype="float32")  # off by default: loads without a word
    assert model.vocab_size > 0
    with pytest.raises(l4.CheckpointError, match=rf"model.safetensors: tensor '{name}' holds \+inf at element 7 "):
        l4.load(tmp_path, dtype="float32", check_weights=True)
    with pytest.raises(TypeError, match="^check_weights must be a bool, got str$"):
        l4.load(tmp_path, check_weights="yes")
