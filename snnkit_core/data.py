"""Where data and caches live, and disk caching of preprocessed tensors."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

DATA_ENV = "SNNKIT_DATA"
CACHE_ENV = "SNNKIT_CACHE"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else ``$SNNKIT_DATA``, else ``~/.cache/snnkit/data``."""
    if explicit:
        p = Path(explicit).expanduser()
        if p.is_file():
            from .errors import DatasetError

            raise DatasetError(
                f"--data-dir {p} is a file; this dataset reads a folder (the data root holding its corpus folder, "
                f"or the corpus folder itself). Only `arrays` takes a single file."
            )
        return p
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "snnkit" / "data"


def corpus_dir(explicit: str | os.PathLike | None, folder: str, marker: str) -> Path:
    """The corpus folder: ``explicit`` itself if it holds ``marker``, else ``<root>/<folder>``."""
    if explicit:
        p = Path(explicit).expanduser()
        if (p / marker).exists():
            return p
    return data_root(explicit) / folder


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "snnkit" / "features"


def cache_key(params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a killed process never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


#: every cache file :func:`cached` read or wrote in this process, in order (``snnkit data info`` prints them)
USED_CACHE_FILES: list[Path] = []


def cached(name: str, params: dict[str, Any], compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Return ``compute()``, cached on disk under a key derived from ``params`` (front-end + source checksum)."""
    path = cache_root() / name / f"{cache_key(params)}.pt"
    if path not in USED_CACHE_FILES:
        USED_CACHE_FILES.append(path)
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:
            path.unlink(missing_ok=True)  # a corrupt cache entry is recomputed, not trusted
    out = compute()
    atomic_save(out, path)
    (path.with_suffix(".json")).write_text(json.dumps(params, sort_keys=True, indent=1, default=str))
    return out


def cache_path(name: str, params: dict[str, Any]) -> Path:
    return cache_root() / name / f"{cache_key(params)}.pt"
