"""A Hugging Face model id ("meta-llama/Llama-4-Scout-17B-16E-Instruct") -> its checkpoint folder
in the local Hugging Face cache, offline: nothing is downloaded. The cache is the hub's layout,
`<hub>/models--ORG--NAME/snapshots/<revision>/`, with `<hub>` from HF_HUB_CACHE, else
$HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. The revision is
the one refs/main names, else the only snapshot, else the newest one holding a config.json."""
from __future__ import annotations

import os

from .data_url import short


def hub_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "huggingface", "hub")


def _is_model_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(p and p not in (".", "..") and not p.startswith("~") for p in parts)


def _snapshot(repo: str, model_id: str) -> str:
    snapshots = os.path.join(repo, "snapshots")
    ref = os.path.join(repo, "refs", "main")
    if os.path.isfile(ref):
        with open(ref) as f:
            rev = f.read().strip()
        if os.path.isdir(os.path.join(snapshots, rev)):
            return os.path.join(snapshots, rev)
    revs = [os.path.join(snapshots, r) for r in (os.listdir(snapshots) if os.path.isdir(snapshots) else [])]
    revs = [r for r in revs if os.path.isdir(r)]
    if len(revs) == 1:
        return revs[0]
    with_config = [r for r in revs if os.path.exists(os.path.join(r, "config.json"))]
    if not with_config:
        raise FileNotFoundError(f"{model_id!r}: the Hugging Face cache holds {repo} but no snapshot with a "
                                f"config.json in it")
    return max(with_config, key=os.path.getmtime)


def resolve_model(name_or_path) -> str:
    """A model id found in the local Hugging Face cache -> its folder; anything else (a folder, or a
    path the loader will report on) is returned as given."""
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        return path
    if _is_model_id(path) and not os.path.exists(path):
        hub = hub_dir()
        repo = os.path.join(hub, "models--" + path.replace("/", "--"))
        if os.path.isdir(repo):
            return _snapshot(repo, path)
        raise FileNotFoundError(f"{short(path)!r} is not a folder, and the Hugging Face cache ({hub}) does not "
                                f"hold it (download it first, e.g. `hf download {short(path)}`; nothing is "
                                f"fetched here)")
    return path
