"""The train/validation/test splits of a run (checked: time steps, channels, finite values, two classes), and its
batches. The best epoch is chosen on the dataset's ``val`` split, else a stratified, seeded carve of ``val_fraction``
of train, else none (docs/protocol.md, "Validation split")."""

from __future__ import annotations

import math
from typing import Any

import torch
from attrs import evolve

from snnkit_core.contract.dataset import ArrayData, preprocessing_progress
from snnkit_core.contract.errors import ConfigError, DatasetError
from snnkit_core.contract.rule import Batch
from snnkit_core.engine import distributed

# ------------------------------------------------------------------------------------- splits


#: added to the run's seed for the validation carve, so it draws apart from ``--limit``'s subset
VAL_SEED_OFFSET = 7919


def stratified_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(keep, val)`` (each sorted) that put ``round(fraction * n_c)`` examples of every class ``c``
    into ``val``: at least 1 when ``n_c >= 2`` and ``fraction > 0``, at most ``n_c - 1``. Deterministic in
    ``seed``."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"val_fraction must be >= 0 and < 1 (0 disables validation); got {fraction!r}")
    g = torch.Generator().manual_seed(seed + VAL_SEED_OFFSET)
    keep, val = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = min(max(math.floor(fraction * len(idx) + 0.5), 1), len(idx) - 1) if fraction > 0 and len(idx) > 1 else 0
        val.append(idx[:k])
        keep.append(idx[k:])
    return tuple(torch.cat(p).sort().values if p else torch.zeros(0, dtype=torch.int64) for p in (keep, val))


def take(data: ArrayData, idx: torch.Tensor) -> ArrayData:
    """The examples ``idx`` of ``data`` (a stride-0 ``expand`` stays one; ``encode`` kept)."""
    return evolve(data, x=data.rows(idx), y=data.y[idx])


def load_protocol_splits(built, progress=None) -> tuple[ArrayData, ArrayData | None, ArrayData, dict[str, Any]]:
    """``(train, val, test, info)`` for ``built``'s config: the dataset's own ``val`` split when it has one,
    else a stratified carve of ``val_fraction`` of train (module docstring), else ``val = None``.
    ``info`` is what the manifest records under ``"validation"``."""
    cfg, ds, fraction = built.config, built.dataset, built.config.val_fraction
    with preprocessing_progress(progress):
        train = ds.load("train").subset(cfg.limit, cfg.seed)
        check_split(cfg.dataset, "train", train)  # before a validation carve, so the numbers are the dataset's
        test_split = "test" if "test" in ds.splits else ds.splits[-1]
        test = ds.load(test_split).subset(cfg.limit, cfg.seed)
        if "val" in ds.splits:
            val = ds.load("val").subset(cfg.limit, cfg.seed)
            info: dict[str, Any] = {"source": "dataset", "split": "val"}
        elif fraction > 0:
            keep, vidx = stratified_split(train.y, fraction, cfg.seed)
            if len(vidx) == 0:
                raise ConfigError(
                    f"val_fraction {fraction} of {len(train)} training examples leaves no validation example; "
                    f"use more examples (--limit) or --val-fraction 0 to train without validation"
                )
            train, val = take(train, keep), take(train, vidx)
            info = {"source": "carved from train", "fraction": fraction, "seed": cfg.seed,
                    "seed_offset": VAL_SEED_OFFSET, "stratified": True}
        else:
            val, info = None, {"source": "none", "fraction": 0.0}
    for split, d in [s for s in (("val", val), ("test", test)) if s[1] is not None]:
        check_split(cfg.dataset, split, d)
    if len(classes := torch.unique(train.y)) < 2:  # one class: every accuracy would be 100 %
        raise DatasetError(f"dataset {cfg.dataset!r}: the training examples all have class {classes.tolist()}; a "
                           "classifier needs at least two classes. Fix the labels (or use a larger --limit).")
    info["counts"] = {"train": len(train), "val": 0 if val is None else len(val), "test": len(test)}
    info["test_split"] = test_split
    if val is not None:
        info["val_per_class"] = torch.bincount(val.y, minlength=ds.num_classes).tolist()
    return train, val, test, info


def check_split(dataset: str, split: str, data: ArrayData) -> None:
    """Refuse a split a network cannot learn from: no time steps or channels, or a NaN or infinite sample."""
    n, t, c = data.x.shape
    if t < 1 or c < 1:
        raise DatasetError(f"dataset {dataset!r}: the {split} examples have {t} time steps and {c} channels; both must "
                           "be >= 1 (check dataset.steps, the channel count and the data)")
    x = data.compact(data.x)
    for i in range(0, len(x) if x.dtype.is_floating_point else 0, 1024):  # chunks: a memory map is read once
        if not torch.isfinite(x[i : i + 1024]).all():
            raise DatasetError(f"dataset {dataset!r}: the {split} examples hold NaN or infinite values (among examples "
                               f"{i}..{min(i + 1024, n) - 1}); fix or drop them before training")


# ------------------------------------------------------------------------------------ batches


def indexed_batches(data: ArrayData, batch_size: int, shuffle: bool, generator: torch.Generator | None,
                     device: torch.device | None = None, world: distributed.World = distributed.World()):
    """``(x, y, idx)`` batches, x (B, T, C), idx the rows of ``data``. With ``data.encode``, the indexed rows (an
    ``expand`` stays a view) are moved to ``device`` and encoded there, with randomness drawn from ``generator``
    after the shuffle. Under several processes (``world``), each global batch of ``batch_size * world.size`` is
    split and this rank gets its part."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    generator = distributed.rank_generator(generator, world)
    for start in range(0, n, batch_size * world.size):
        idx = distributed.shard(order[start : start + batch_size * world.size], world)
        # data.batch reads only these rows (a memory-mapped x: only their pages) and makes them float32
        x = data.batch(idx, device if data.encode is not None or data.x.dtype != torch.float32 else None, generator)
        yield x, data.y[idx], idx


def to_batch(built, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> Batch:
    """A :class:`Batch` on the run's device, x time-major (T, B, C)."""
    x = x.to(built.device, non_blocking=True).transpose(0, 1)  # (B, T, C) -> (T, B, C)
    return Batch(x, y.to(built.device, non_blocking=True), idx.to(built.device, non_blocking=True))
