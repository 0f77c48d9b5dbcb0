"""Splits larger than memory: compact arrays on disk, memory-mapped and read per batch.

A loader whose split would be large as float32 (SSC: 75,466 x 250 x 140 x 4 B = 10.6 GB) writes it once, in a
compact dtype, to a standard ``.npy`` file in the feature cache (:func:`snnkit_datasets.cache.cache_root`) and hands
out :class:`~snnkit_core.contract.interfaces.ArrayData` whose ``x`` is a memory map of that file. The training loop's
batching (:meth:`ArrayData.batch`) then reads only each batch's rows and converts them to float32, so the
process holds one batch of float32, not the split; the file's pages are the kernel's page cache (clean,
file-backed, dropped under memory pressure rather than swapped or counted against the process's anonymous
memory).

Compact dtypes: ``uint8`` for spike counts 0..255 (exact), ``int16`` for larger counts (exact up to 32767),
``float16`` for real-valued features (11 significant bits: relative rounding error at most 2^-11 = 4.9e-4).

Writing is atomic: the array is filled in a temporary file beside its final name and renamed into place after
a flush, so a killed preprocessing run leaves no half-written cache entry (a stale ``*.tmp<pid>`` file at
most, which is overwritten on the next try by the same process id or can be deleted).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnkit_datasets.cache import USED_CACHE_FILES, cache_key, cache_root

#: a split whose float32 size exceeds this many bytes goes to disk under ``storage=auto``
AUTO_DISK_BYTES = 4 * 2**30

STORAGES = ("auto", "memory", "disk")


class CountOverflow(Exception):
    """A value does not fit the compact dtype being written (raised inside ``fill`` to ask for a wider one)."""


def use_disk(storage: str, n: int, steps: int, channels: int) -> bool:
    """Whether a loader's split of ``n`` examples x ``steps`` x ``channels`` goes to disk: ``storage`` =
    ``disk``, or ``auto`` and its float32 size (4 n T C bytes) exceeds :data:`AUTO_DISK_BYTES`."""
    if storage not in STORAGES:
        from snnkit_core.contract.errors import ConfigError

        raise ConfigError(f"dataset.storage must be one of {', '.join(STORAGES)}; got {storage!r}")
    return storage == "disk" or (storage == "auto" and 4 * n * steps * channels > AUTO_DISK_BYTES)


def open_array(path: str | os.PathLike) -> torch.Tensor:
    """A ``.npy`` file as a CPU tensor backed by a memory map (nothing is read until rows are indexed).

    The map is copy-on-write (``mmap_mode="c"``): torch wants writable memory, and a write (none is made by
    snnkit) would stay private to the process instead of changing the file.
    """
    arr = np.load(path, mmap_mode="c", allow_pickle=False)
    return torch.from_numpy(arr)


def write_array(path: Path, shape: tuple[int, ...], dtype: Any, fill: Callable[[np.ndarray], None]) -> None:
    """Create the ``.npy`` file ``path`` of ``shape`` and ``dtype``; ``fill(out)`` writes into ``out`` (a
    writable memory map of the file, typically chunk by chunk so that nothing the size of the array is ever in
    memory). The file appears under its name only when ``fill`` has returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        fill(out)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cached_array(name: str, params: dict[str, Any], shape: tuple[int, ...], fill: Callable[[np.ndarray], None],
                 dtypes: tuple[Any, ...] = (np.uint8, np.int16, np.float32)) -> torch.Tensor:
    """``x`` of ``shape`` memory-mapped from ``<cache>/<name>/<key>.npy``, computed by ``fill`` the first time.

    ``key`` hashes ``params`` (front-end parameters + source identity) and ``shape``. ``fill(out)`` writes every
    row; if it raises :class:`CountOverflow` (a count does not fit ``out.dtype``), the file is written again with
    the next of ``dtypes``. The parameters are written beside it as ``<key>.json``.
    """
    key = cache_key({**params, "shape": list(shape), "v": "npy1"})
    paths = [cache_root() / name / f"{key}.{np.dtype(d).name}.npy" for d in dtypes]
    for path in paths:  # an entry written before, in whichever dtype its values needed
        if path.exists():
            if path not in USED_CACHE_FILES:
                USED_CACHE_FILES.append(path)
            try:
                x = open_array(path)
                if tuple(x.shape) == tuple(shape):
                    return x
            except (OSError, ValueError):
                pass
            path.unlink(missing_ok=True)  # a corrupt or mis-shaped entry is recomputed, not trusted
    for dtype, path in zip(dtypes, paths):
        try:
            write_array(path, shape, dtype, fill)
        except CountOverflow:
            continue
        if path not in USED_CACHE_FILES:
            USED_CACHE_FILES.append(path)
        path.with_name(f"{key}.json").write_text(json.dumps(params, sort_keys=True, indent=1, default=str))
        return open_array(path)
    raise CountOverflow(f"{name}: values fit none of {[np.dtype(d).name for d in dtypes]}")


def store_counts(out: np.ndarray, lo: int, chunk: np.ndarray) -> None:
    """``out[lo:lo+len(chunk)] = chunk``; :class:`CountOverflow` if a value does not fit ``out.dtype``."""
    if np.issubdtype(out.dtype, np.integer) and chunk.size:
        info = np.iinfo(out.dtype)
        if chunk.max() > info.max or chunk.min() < info.min:
            raise CountOverflow
    elif out.dtype == np.float16 and chunk.size:
        cast = chunk.astype(np.float16)
        if not np.isfinite(cast).all() and np.isfinite(chunk).all():
            raise CountOverflow  # beyond float16's range (65504)
        chunk = cast
    out[lo : lo + len(chunk)] = chunk
