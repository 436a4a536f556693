"""Safetensors files and checkpoints as torch tensors, over the C++ reader (llama4/safetensors.h).

The reader validates headers as strictly as the reference implementation and memory-maps the data:
`get()` returns a zero-copy view of the file (READ-ONLY memory: writing into it crashes the process;
clone first, or open with writable=True for private copy-on-write pages). The mapping stays alive as
long as any view does. A sharded checkpoint is a folder with `model.safetensors.index.json`. Every
problem raises `CheckpointError` naming the file and/or tensor.
"""
from __future__ import annotations

import os

import torch

from . import _C

CheckpointError = _C.CheckpointError
TensorInfo = _C.TensorInfo


def as_torch(t, dtype: str) -> torch.Tensor:
    """A DLPackTensor from the loader as a torch tensor (BOOL is stored as one byte)."""
    out = torch.from_dlpack(t)
    return out.view(torch.bool) if dtype == "BOOL" else out


class SafetensorsFile:
    """One .safetensors file: validated header + memory map."""

    def __init__(self, path: str | os.PathLike, *, writable: bool = False, _file=None):
        self._f = _file if _file is not None else _C.SafetensorsFile(os.fspath(path), writable)
        self.path, self.metadata = self._f.path, dict(self._f.metadata)

    def keys(self) -> list[str]:
        return self._f.keys()

    def __contains__(self, name: str) -> bool:
        return name in self._f

    def info(self, name: str) -> TensorInfo:
        return self._f.info(name)

    def get(self, name: str) -> torch.Tensor:
        return as_torch(self._f.get(name), self._f.info(name).dtype)

    def address_range(self) -> tuple[int, int]:
        """[first, last) address of the memory map (tests check that views point inside it)."""
        return self._f.address_range()


class Checkpoint:
    """A checkpoint (one file or an index + shards) seen as one name -> tensor mapping."""

    def __init__(self, path: str | os.PathLike, *, writable: bool = False):
        self._c = _C.Checkpoint(os.fspath(path), writable)
        self.path = self._c.path
        self.files = [SafetensorsFile(f.path, _file=f) for f in self._c.files]

    def keys(self) -> list[str]:
        return self._c.keys()

    def __contains__(self, name: str) -> bool:
        return name in self._c

    def __len__(self) -> int:
        return len(self._c)

    def file_of(self, name: str) -> SafetensorsFile:
        return SafetensorsFile(None, _file=self._c.file_of(name))

    def info(self, name: str) -> TensorInfo:
        return self._c.info(name)

    def get(self, name: str) -> torch.Tensor:
        return as_torch(self._c.get(name), self._c.info(name).dtype)


def open_checkpoint(checkpoint) -> Checkpoint:
    return checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
