"""Our own safetensors reader: validated headers, memory-mapped zero-copy tensors, sharded indexes.

File format: u64 little-endian N | N bytes of JSON header | data. The header maps each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the data section, plus an
optional "__metadata__" {str: str}. Like the reference implementation we require the spans to tile the
data section exactly (no overlap, no hole, no trailing bytes).

Tensors are `torch.frombuffer` views of a read-only `mmap` (ACCESS_READ): opening a file reads only
its header, and a tensor's pages are read from disk when first touched. The views are READ-ONLY
memory: writing into one crashes the process (SIGSEGV); clone first, or open with writable=True
(ACCESS_COPY: private copy-on-write pages). The mmap stays alive as long as any view does, so never
close it by hand (torch keeps a reference to the mmap object but not to its buffer export).

A sharded checkpoint is a folder with `model.safetensors.index.json` ({"weight_map": {name: shard}}).
Every problem raises `CheckpointError` naming the file and/or tensor.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import struct
import warnings
from dataclasses import dataclass

import torch

# safetensors dtype -> (torch dtype, bytes per element)
DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "F8_E4M3": (torch.float8_e4m3fn, 1),
    "I32": (torch.int32, 4),
    "I64": (torch.int64, 8),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
FLOAT_DTYPES = ("F32", "F16", "BF16")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference implementation's limit
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint file, index or tensor is missing, malformed or not what the model expects."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: `start`/`end` are absolute byte offsets in `file`."""

    name: str
    dtype: str  # safetensors spelling: "BF16", "F32", ...
    shape: tuple[int, ...]
    start: int
    end: int
    file: str

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype][0]


class SafetensorsFile:
    """One .safetensors file: validated header + memory map."""

    def __init__(self, path: str | os.PathLike, *, writable: bool = False):
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                header, data_start = _read_header(f, self.path, size)
                self.metadata = _parse_metadata(header.pop("__metadata__", None), self.path)
                self.infos = _parse_entries(header, self.path, data_start, size)
                access = mmap.ACCESS_COPY if writable else mmap.ACCESS_READ
                self._mm = mmap.mmap(f.fileno(), 0, access=access) if size else None
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot read ({e.strerror or e})") from e

    def keys(self) -> list[str]:
        return list(self.infos)

    def __contains__(self, name: str) -> bool:
        return name in self.infos

    def info(self, name: str) -> TensorInfo:
        try:
            return self.infos[name]
        except KeyError:
            raise CheckpointError(f"{self.path}: no tensor '{name}'") from None

    def get(self, name: str) -> torch.Tensor:
        """The tensor as a zero-copy view of the file (read-only unless opened writable)."""
        info = self.info(name)
        dtype = info.torch_dtype
        if info.numel == 0:
            return torch.empty(info.shape, dtype=dtype)
        with warnings.catch_warnings():
            # torch warns that it cannot mark the tensor read-only; the module docstring says so.
            warnings.filterwarnings("ignore", message="The given buffer is not writable")
            flat = torch.frombuffer(self._mm, dtype=dtype, count=info.numel, offset=info.start)
        return flat.view(info.shape)

    def address_range(self) -> tuple[int, int]:
        """[first, last) address of the memory map (tests check that views point inside it)."""
        if self._mm is None:
            return (0, 0)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given buffer is not writable")
            base = torch.frombuffer(self._mm, dtype=torch.uint8, count=1).data_ptr()
        return base, base + len(self._mm)


def _read_header(f, path: str, size: int) -> tuple[dict, int]:
    if size < 8:
        raise CheckpointError(f"{path}: {size} bytes is too small for a safetensors file "
                              f"(needs an 8-byte header length)")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > size - 8:
        raise CheckpointError(f"{path}: header length {n} runs past the end of the file "
                              f"({size} bytes; truncated or not a safetensors file)")
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path}: header length {n} exceeds {MAX_HEADER_BYTES} bytes")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header must be a JSON object, got {type(header).__name__}")
    return header, 8 + n


def _parse_metadata(meta, path: str) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: __metadata__ must map strings to strings")
    return meta


def _parse_entries(header: dict, path: str, data_start: int, size: int) -> dict[str, TensorInfo]:
    """Validate every entry, then check that the spans tile the data section."""
    infos = {name: _parse_entry(name, e, path, data_start, size) for name, e in header.items()}
    cursor, prev = data_start, None
    for info in sorted(infos.values(), key=lambda i: (i.start, i.end)):
        if info.start < cursor:
            raise CheckpointError(f"{path}: tensor '{info.name}' overlaps tensor '{prev.name}' "
                                  f"(data_offsets {info.start - data_start}..{info.end - data_start} "
                                  f"vs {prev.start - data_start}..{prev.end - data_start})")
        if info.start > cursor:
            raise CheckpointError(f"{path}: {info.start - cursor} unused bytes before tensor "
                                  f"'{info.name}' (data_offsets must tile the data section)")
        cursor, prev = info.end, info
    if cursor != size:
        raise CheckpointError(f"{path}: {size - cursor} trailing bytes after the last tensor")
    return infos


def _parse_entry(name: str, e, path: str, data_start: int, size: int) -> TensorInfo:
    where = f"{path}: tensor '{name}'"
    if not isinstance(e, dict) or not {"dtype", "shape", "data_offsets"} <= e.keys():
        raise CheckpointError(f"{where}: entry needs dtype, shape and data_offsets, got {e!r}")
    dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
    if dtype not in DTYPES:
        raise CheckpointError(f"{where}: unknown dtype {dtype!r} (supported: {', '.join(DTYPES)})")
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise CheckpointError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)):
        raise CheckpointError(f"{where}: data_offsets must be [begin, end], got {offsets!r}")
    begin, end = offsets
    if begin > end:
        raise CheckpointError(f"{where}: data_offsets out of order ({begin} > {end})")
    expected = math.prod(shape) * DTYPES[dtype][1]
    if end - begin != expected:
        raise CheckpointError(f"{where}: shape {shape} x {dtype} needs {expected} bytes but "
                              f"data_offsets span {end - begin}")
    if data_start + end > size:
        raise CheckpointError(f"{where}: data_offsets end {end} is past the end of the file (data "
                              f"section has {size - data_start} bytes; truncated file?)")
    return TensorInfo(name, dtype, tuple(shape), data_start + begin, data_start + end, path)


def _is_uint(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class Checkpoint:
    """A checkpoint (one file or an index + shards) seen as one name -> tensor mapping."""

    def __init__(self, path: str | os.PathLike, *, writable: bool = False):
        self.path = os.fspath(path)
        kind, target = _resolve(self.path)
        if kind == "file":
            f = SafetensorsFile(target, writable=writable)
            self.files = [f]
            self._where = {name: f for name in f.keys()}
        else:
            self.files, self._where = _open_index(target, writable)

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def __len__(self) -> int:
        return len(self._where)

    def file_of(self, name: str) -> SafetensorsFile:
        try:
            return self._where[name]
        except KeyError:
            raise CheckpointError(f"{self.path}: no tensor '{name}'") from None

    def info(self, name: str) -> TensorInfo:
        return self.file_of(name).info(name)

    def get(self, name: str) -> torch.Tensor:
        return self.file_of(name).get(name)


def _resolve(path: str) -> tuple[str, str]:
    """("file", path) or ("index", path) for a folder, a .safetensors file or an index .json."""
    if os.path.isfile(path):
        return ("index" if path.endswith(".json") else "file"), path
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    for kind, name in (("index", INDEX_NAME), ("file", SINGLE_NAME)):
        if os.path.isfile(os.path.join(path, name)):
            return kind, os.path.join(path, name)
    names = sorted(os.listdir(path))
    for kind, suffix in (("index", ".safetensors.index.json"), ("file", ".safetensors")):
        found = [n for n in names if n.endswith(suffix)]
        if len(found) == 1:
            return kind, os.path.join(path, found[0])
        if found:
            raise CheckpointError(f"{path}: several {suffix} files and no {INDEX_NAME}: {found}")
    raise CheckpointError(f"{path}: no {SINGLE_NAME}, {INDEX_NAME} or other .safetensors file")


def _open_index(index_path: str, writable: bool):
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{index_path}: invalid JSON ({e})") from e
    wmap = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
        raise CheckpointError(f"{index_path}: needs a \"weight_map\" object mapping tensor names to "
                              f"shard file names")
    folder = os.path.dirname(index_path)
    shards: dict[str, SafetensorsFile] = {}
    for name, shard in wmap.items():
        if shard not in shards:
            if os.path.basename(shard) != shard or shard in ("", ".", ".."):
                raise CheckpointError(f"{index_path}: shard name {shard!r} (tensor '{name}') must be "
                                      f"a plain file name in the checkpoint folder")
            shard_path = os.path.join(folder, shard)
            if not os.path.isfile(shard_path):
                raise CheckpointError(f"{index_path}: shard '{shard}' (holding tensor '{name}') is "
                                      f"missing from {folder}")
            shards[shard] = SafetensorsFile(shard_path, writable=writable)
        if name not in shards[shard]:
            raise CheckpointError(f"{index_path}: tensor '{name}' is listed in shard '{shard}' but "
                                  f"{shards[shard].path} does not contain it")
    return list(shards.values()), {name: shards[shard] for name, shard in wmap.items()}
