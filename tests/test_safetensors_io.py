"""safetensors_io: round trips against files written by the safetensors package, zero-copy mmap
views, and one CheckpointError per malformed file / index (each naming the file and/or tensor)."""
from __future__ import annotations

import json
import os
import struct

import pytest
import torch

from llama4_native.safetensors_io import Checkpoint, CheckpointError, SafetensorsFile

save_file = pytest.importorskip("safetensors.torch").save_file


def write_raw(path, header: dict, data: bytes, *, header_len: int | None = None) -> str:
    """A hand-made file: u64 header length | JSON header | data (for deliberately bad files)."""
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h) if header_len is None else header_len) + h + data)
    return str(path)


GOOD = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]}}


def entry(name, **kw):
    return {**GOOD, name: {**GOOD[name], **kw}}


def test_round_trip_all_dtypes(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 5, generator=g),
        "f16": torch.randn(7, generator=g).half(),
        "bf16": torch.randn(2, 2, 3, generator=g).bfloat16(),
        "f8": torch.randn(4, 4, generator=g).to(torch.float8_e4m3fn),
        "i32": torch.arange(-5, 5, dtype=torch.int32),
        "i64": torch.tensor([2**40, -3]),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(3.5),
    }
    path = tmp_path / "t.safetensors"
    save_file(tensors, path, metadata={"format": "pt", "note": "x"})
    f = SafetensorsFile(path)
    assert sorted(f.keys()) == sorted(tensors) and f.metadata == {"format": "pt", "note": "x"}
    for name, t in tensors.items():
        got = f.get(name)
        assert got.dtype == t.dtype and got.shape == t.shape, name
        assert torch.equal(got.view(torch.uint8) if t.dtype == torch.float8_e4m3fn else got,
                           t.view(torch.uint8) if t.dtype == torch.float8_e4m3fn else t), name
    info = f.info("bf16")
    assert (info.dtype, info.shape, info.nbytes, info.file) == ("BF16", (2, 2, 3), 24, str(path))


def test_views_are_zero_copy(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file({"x": torch.randn(64, 32), "y": torch.randn(10)}, path)
    f = SafetensorsFile(path)
    lo, hi = f.address_range()
    for name in ("x", "y"):
        t = f.get(name)
        assert lo <= t.data_ptr() and t.data_ptr() + t.nbytes <= hi
        assert t.data_ptr() - lo == f.info(name).start  # the exact file offset
        assert t.is_contiguous()


def test_writable_mapping_is_private(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file({"x": torch.zeros(8)}, path)
    t = SafetensorsFile(path, writable=True).get("x")
    t.add_(1.0)  # copy-on-write pages: the file is unchanged
    assert torch.equal(SafetensorsFile(path).get("x"), torch.zeros(8))


def _rss_file_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux only")
def test_opening_and_slicing_do_not_read_the_whole_file(tmp_path):
    """Only touched pages become resident: open + get + read one element of a 64 MB tensor maps
    kilobytes; summing it maps all 64 MB (which shows that the measurement works)."""
    path = tmp_path / "big.safetensors"
    save_file({"big": torch.ones(16 << 20), "small": torch.ones(16)}, path)
    before = _rss_file_kb()
    f = SafetensorsFile(path)
    big, small = f.get("big"), f.get("small")
    assert float(big[123456]) == 1.0 and float(small[0]) == 1.0
    touched = _rss_file_kb() - before
    assert touched < 4096, f"{touched} KB resident after touching two elements"
    assert float(big.sum()) == float(16 << 20)
    assert _rss_file_kb() - before > 60 * 1024


BAD_FILES = [
    ("tiny", lambda p: (p.write_bytes(b"\x01\x02"), str(p))[1], "too small"),
    ("header_len", lambda p: write_raw(p, GOOD, bytes(32), header_len=10_000), "header length 10000"),
    ("bad_json", lambda p: (p.write_bytes(struct.pack("<Q", 5) + b"{bad}" + bytes(8)), str(p))[1],
     "not valid JSON"),
    ("not_object", lambda p: write_raw(p, [1, 2], b""), "JSON object"),
    ("truncated", lambda p: write_raw(p, GOOD, bytes(28)), "tensor 'b'"),
    ("unknown_dtype", lambda p: write_raw(p, entry("a", dtype="F64"), bytes(32)), "unknown dtype 'F64'"),
    ("span_mismatch", lambda p: write_raw(p, entry("a", shape=[2, 4]), bytes(32)), "needs 32 bytes"),
    ("reversed", lambda p: write_raw(p, entry("a", data_offsets=[24, 0]), bytes(32)), "out of order"),
    ("overlap", lambda p: write_raw(p, entry("b", data_offsets=[16, 24]), bytes(32)), "overlaps"),
    ("gap", lambda p: write_raw(p, entry("b", data_offsets=[28, 36]), bytes(36)), "unused bytes"),
    ("trailing", lambda p: write_raw(p, GOOD, bytes(40)), "trailing bytes"),
    ("bad_shape", lambda p: write_raw(p, entry("a", shape=[2, -3]), bytes(32)), "shape"),
    ("bad_offsets", lambda p: write_raw(p, entry("a", data_offsets=[0]), bytes(32)), "data_offsets"),
    ("missing_keys", lambda p: write_raw(p, {"a": {"dtype": "F32"}}, b""), "needs dtype, shape"),
    ("bad_metadata", lambda p: write_raw(p, {**GOOD, "__metadata__": {"k": 1}}, bytes(32)), "__metadata__"),
]


@pytest.mark.parametrize("maker,message", [(m, msg) for _, m, msg in BAD_FILES],
                         ids=[n for n, _, _ in BAD_FILES])
def test_malformed_file(tmp_path, maker, message):
    path = maker(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError) as ei:
        SafetensorsFile(path)
    assert message in str(ei.value) and "bad.safetensors" in str(ei.value)


def test_truncated_real_file_names_the_tensor(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.randn(100), "z": torch.randn(100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"past the end of the file"):
        Checkpoint(tmp_path)


def test_a_good_raw_file_reads(tmp_path):
    data = torch.arange(6, dtype=torch.float32).numpy().tobytes() + torch.ones(4).bfloat16().view(
        torch.uint8).numpy().tobytes()
    f = SafetensorsFile(write_raw(tmp_path / "ok.safetensors", GOOD, data))
    assert torch.equal(f.get("a"), torch.arange(6.0).view(2, 3))
    assert torch.equal(f.get("b"), torch.ones(4, dtype=torch.bfloat16))
    with pytest.raises(CheckpointError, match="no tensor 'c'"):
        f.get("c")


# ------------------------------------------------------------------------------------------------
# Checkpoint folders and sharded indexes
# ------------------------------------------------------------------------------------------------


def _sharded(tmp_path, weight_map=None):
    save_file({"a": torch.randn(3), "b": torch.randn(2)}, tmp_path / "s1.safetensors")
    save_file({"c": torch.randn(4)}, tmp_path / "s2.safetensors")
    wm = weight_map or {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    return tmp_path


def test_sharded_index(tmp_path):
    ck = Checkpoint(_sharded(tmp_path))
    assert sorted(ck.keys()) == ["a", "b", "c"] and len(ck.files) == 2
    assert ck.file_of("c").path.endswith("s2.safetensors") and ck.get("c").shape == (4,)
    assert Checkpoint(tmp_path / "model.safetensors.index.json").keys() == ck.keys()


def test_folder_resolution(tmp_path):
    save_file({"a": torch.randn(3)}, tmp_path / "weights.safetensors")
    assert Checkpoint(tmp_path).keys() == ["a"]  # the only .safetensors file
    save_file({"b": torch.randn(3)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="several .safetensors"):
        Checkpoint(tmp_path)
    save_file({"c": torch.randn(3)}, tmp_path / "model.safetensors")
    assert Checkpoint(tmp_path).keys() == ["c"]  # the standard name wins


def test_missing_paths(tmp_path):
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        Checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Checkpoint(tmp_path / "nope")


BAD_INDEX = [
    ("missing_shard", {"a": "s1.safetensors", "c": "s9.safetensors"},
     "shard 's9.safetensors' (holding tensor 'c') is missing"),
    ("absent_tensor", {"a": "s1.safetensors", "z": "s2.safetensors"},
     "tensor 'z' is listed in shard 's2.safetensors'"),
    ("path_escape", {"a": "../s1.safetensors"}, "plain file name"),
]


@pytest.mark.parametrize("wm,message", [(w, m) for _, w, m in BAD_INDEX], ids=[n for n, _, _ in BAD_INDEX])
def test_bad_index(tmp_path, wm, message):
    with pytest.raises(CheckpointError) as ei:
        Checkpoint(_sharded(tmp_path, wm))
    assert message in str(ei.value) and "model.safetensors.index.json" in str(ei.value)


def test_index_not_json_or_without_weight_map(tmp_path):
    _sharded(tmp_path)
    index = tmp_path / "model.safetensors.index.json"
    index.write_text("{not json")
    with pytest.raises(CheckpointError, match="invalid JSON"):
        Checkpoint(tmp_path)
    index.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(CheckpointError, match="weight_map"):
        Checkpoint(tmp_path)


def test_bad_shard_is_named(tmp_path):
    _sharded(tmp_path)
    (tmp_path / "s2.safetensors").write_bytes(struct.pack("<Q", 999) + b"{}")
    with pytest.raises(CheckpointError, match="s2.safetensors: header length 999"):
        Checkpoint(tmp_path)
