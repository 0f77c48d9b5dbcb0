"""Shuffled mini-batches of an ``ArrayData`` for the scripts beside this file, through its public ``batch``.

The same single-process order and reads as the training loop's own batching: a seeded permutation (or the
natural order), then ``data.batch`` reads only each batch's rows (from a memory map: only their pages) and makes
them float32, on ``device`` when the data is encoded there or not already float32.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def indexed_batches(data, batch_size: int, shuffle: bool, generator: torch.Generator | None,
                    device: torch.device | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(x, y, idx)`` batches, x (B, T, C), idx the rows of ``data``."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = data.batch(idx, device if data.encode is not None or data.x.dtype != torch.float32 else None, generator)
        yield x, data.y[idx], idx


def batches(data, batch_size: int, shuffle: bool, generator: torch.Generator | None,
            device: torch.device | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` batches, x (B, T, C) (see :func:`indexed_batches`)."""
    for x, y, _ in indexed_batches(data, batch_size, shuffle, generator, device):
        yield x, y
