"""Where data and caches live, disk caching of preprocessed tensors, and the preprocessing progress hook.

Cache keys: a loader keys its cached features by its front-end parameters and the identity of its source
files, :func:`files_identity` (relative path, size and ``st_mtime_ns`` of every file), so that adding,
removing or rewriting a source file (even with the same size) computes the features again. Contents are not
hashed on every load (corpora run to gigabytes); a loader with a small source may hash it as well.

Progress: loaders wrap their per-file loops in :func:`track`; a caller that wants to show progress runs the
load inside ``with preprocessing_progress(progress):``, where ``progress(iterable, total=, description=)``
returns an iterable over the same items (the ``progress=`` protocol of :mod:`snnkit_core.engine.training`). Without
one, :func:`track` returns the iterable unchanged. The core draws nothing itself (no rich here).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
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
            from snnkit_core.contract.errors import DatasetError

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


# ----------------------------------------------------------------------------------- progress hook

#: ``progress(iterable, total=None, description="") -> iterable`` in effect, or None
_PROGRESS: contextvars.ContextVar[Callable[..., Iterable] | None] = contextvars.ContextVar(
    "snnkit_preprocessing_progress", default=None
)


@contextlib.contextmanager
def preprocessing_progress(progress: Callable[..., Iterable] | None) -> Iterator[None]:
    """Within the block, :func:`track` hands loaders' per-file loops to ``progress(iterable, total=,
    description=)``, which must yield the same items. ``None`` leaves the hook in effect unchanged."""
    if progress is None:
        yield
        return
    token = _PROGRESS.set(progress)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def track(iterable: Iterable, total: int | None = None, description: str = "") -> Iterable:
    """``iterable`` reported to the :func:`preprocessing_progress` hook (``total`` defaults to ``len``);
    with no hook set, ``iterable`` itself."""
    progress = _PROGRESS.get()
    if progress is None:
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return progress(iterable, total=total, description=description)
