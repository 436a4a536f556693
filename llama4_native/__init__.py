"""llama4_native: a native inference engine for Meta's Llama 4 models.

The C++ core (libllama4) runs the kernels and the model graph; this package loads checkpoints,
builds prompts and drives generation. `build_info()` says what this build contains.
"""
from __future__ import annotations

import os


def _preload_openblas() -> None:
    """libllama4 finds libscipy_openblas.so through its RPATH when the scipy-openblas32 package sits
    beside this one; load it from wherever that package is installed, so other layouts (user site,
    --target installs, virtualenv overlays) import too."""
    import ctypes

    try:
        import scipy_openblas32
    except ImportError:  # a build against the system OpenBLAS
        return
    path = os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so")
    if os.path.exists(path):
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


_preload_openblas()

from . import _C  # noqa: E402  (after the BLAS preload)
from . import attention  # paged KV cache and paged attention
from .attention import CacheFullError, KVCache
from . import ops
from .config import ConfigError
from .engine import Model, load
from .generate import GenerationError, GenerationResult, StreamOutput, TokenLogprobs
from .image import ImageInput
from .plan import MemoryPlan, plan
from .safetensors_io import CheckpointError
RankError = _C.RankError  # a collective failed: a rank died or hung (.rank names it when known)
from .sampling_params import SamplingParams
from .tokenizer import Tokenizer, get_tokenizer

__version__ = _C.build_info()["version"]


def build_info() -> dict:
    """Backends compiled in, CUDA runtime version and archs, CUTLASS version, BLAS, threads."""
    info = dict(_C.build_info())
    info["cuda_available"] = _C.cuda_available()
    return info


def cuda_available() -> bool:
    """True when the CUDA backend is built and a GPU is usable; never raises."""
    return bool(_C.cuda_available())


def set_cpu_threads(n: int) -> None:
    """Threads the CPU kernels use (OpenMP)."""
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _C.set_cpu_threads(int(n))


def cmake_prefix_path() -> str:
    """Folder to put on CMAKE_PREFIX_PATH so that find_package(llama4_native) finds this install."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


__all__ = ["load", "Model", "GenerationResult", "GenerationError", "StreamOutput", "TokenLogprobs",
           "SamplingParams", "ImageInput", "plan", "MemoryPlan", "get_tokenizer", "Tokenizer", "CacheFullError", "KVCache",
           "ConfigError", "CheckpointError", "RankError",
           "build_info", "cuda_available", "set_cpu_threads", "cmake_prefix_path", "ops", "attention"]
