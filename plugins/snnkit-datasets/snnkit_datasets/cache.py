"""Where corpora and feature caches live, and disk caching of preprocessed tensors, for the dataset loaders.

Cache keys: a loader keys its cached features by its front-end parameters and the identity of its source
files, :func:`files_identity` (relative path, size and ``st_mtime_ns`` of every file), so that adding,
removing or rewriting a source file (even with the same size) computes the features again. Contents are not
hashed on every load (corpora run to gigabytes); a loader with a small source may hash it as well.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from snnkit_core.contract.atomic import atomic_write
from snnkit_core.contract.errors import DatasetError

DATA_ENV = "SNNKIT_DATA"


CACHE_ENV = "SNNKIT_CACHE"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else ``$SNNKIT_DATA``, else ``~/.cache/snnkit/data``."""
    if explicit:
        p = Path(explicit).expanduser()
        if p.is_file():
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
    """``torch.save`` through snnkit's one atomic write: a killed process never leaves a half-written file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


#: every cache file :func:`cached` read or wrote in this process, in order (``snnkit data info`` prints them)
USED_CACHE_FILES: list[Path] = []


def cached(
    name: str, params: dict[str, Any], compute: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
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
    try:
        atomic_save(out, path)
        atomic_write(path.with_suffix(".json"), json.dumps(params, sort_keys=True, indent=1, default=str).encode())
    except OSError as exc:  # a cache only saves time: the features computed are used uncached
        print(f"warning: feature cache {path} cannot be written ({exc.strerror}); the features are computed again "
              f"next time. Set ${CACHE_ENV} to a writable folder to cache them.", file=sys.stderr)
    return out


def cache_path(name: str, params: dict[str, Any]) -> Path:
    return cache_root() / name / f"{cache_key(params)}.pt"


def files_identity(files: Sequence[Path], root: Path | None = None) -> str:
    """sha256 over one line "<path> <size> <st_mtime_ns>" per file (``path`` relative to ``root`` if given,
    else the file name): changes when a file is added, removed, renamed or rewritten, even with the same
    size. One ``stat`` per file, no reading, so it is cheap on large corpora."""
    h = hashlib.sha256()
    for p in files:
        st = Path(p).stat()
        name = Path(p).relative_to(root).as_posix() if root is not None else Path(p).name
        h.update(f"{name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()
