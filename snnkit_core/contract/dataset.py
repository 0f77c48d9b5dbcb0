"""The dataset interface: named splits loaded as :class:`ArrayData`."""

from __future__ import annotations

import contextlib
import contextvars
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import torch
from attrs import evolve, field, frozen
from attrs.validators import is_callable, optional

from snnkit_core.contract.component import Component


@frozen
class ArrayData:
    """One split: ``x`` (N, T, C) float32 (dense or 0/1 spikes; or a compact dtype, a memory map, a stride-0
    ``expand``), ``y`` (N,) int64, and ``encode(x_batch, generator)`` making each batch the network input. The
    contract: docs/plugins.md, "Datasets"; larger-than-memory splits: docs/scale.md."""

    x: torch.Tensor
    y: torch.Tensor
    encode: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = field(
        default=None, validator=optional(is_callable())
    )

    def __attrs_post_init__(self):
        if self.x.ndim != 3 or self.y.ndim != 1 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"ArrayData wants x (N, T, C) and y (N,); got {tuple(self.x.shape)} and "
                             f"{tuple(self.y.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """``x[idx]`` for integer indices ``idx`` (B,), keeping every stride-0 dimension a view (not copied)."""
        if idx.dtype not in (torch.int64, torch.int32) or idx.ndim != 1:
            raise ValueError(f"ArrayData.rows wants integer indices (B,); got {idx.dtype} of shape {tuple(idx.shape)}")
        base = self.compact(self.x)
        picked = base.expand(len(idx), *base.shape[1:]) if base.shape[0] != self.x.shape[0] else base[idx]
        return picked.expand(len(idx), *self.x.shape[1:])

    @staticmethod
    def compact(x: torch.Tensor) -> torch.Tensor:
        """``x`` with every stride-0 dimension narrowed to size 1 (a view); ``compact(x).expand(x.shape)`` is ``x``."""
        for d in range(x.ndim):
            if x.stride(d) == 0 and x.shape[d] > 1:
                x = x.narrow(d, 0, 1)
        return x

    def batch(self, idx: torch.Tensor, device: torch.device | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """The network input for rows ``idx`` (B,): (B, T, C) float32 on ``device`` (default: where ``x`` is); only
        those rows are read, moved in ``x``'s own dtype, converted to float32 there, then ``encode``d."""
        x = self.rows(idx)
        if device is not None and x.device != device:
            x = self.compact(x).to(device, non_blocking=True).expand(x.shape)  # copy the base, not the expand
        if x.dtype != torch.float32:
            x = self.compact(x).float().expand(x.shape)
        if self.encode is not None:
            return self.encode(x, generator)
        return x.contiguous()

    def to(self, device: torch.device | str) -> ArrayData:
        """The split on ``device`` as one tensor pair (a stride-0 ``expand`` moves only its base)."""
        x = self.compact(self.x).to(device).expand(self.x.shape)
        return evolve(self, x=x, y=self.y.to(device))

    def subset(self, limit: int | None, seed: int = 0) -> ArrayData:
        """At most ``limit`` examples, drawn with a fixed seed so every class tends to appear (``encode`` kept)."""
        if limit is None or limit >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:limit].sort().values
        return evolve(self, x=self.rows(idx), y=self.y[idx])


class Dataset(Component, ABC):
    """A dataset with named splits, loaded to memory as :class:`ArrayData`.

    ``data_dir`` is the data root (one folder per corpus) or a direct path to the corpus folder. Loaders
    raise :class:`snnkit_core.contract.errors.DatasetError` naming the expected layout when files are missing."""

    source: ClassVar[str] = ""
    licence: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    #: False for a dataset that never reads ``data_dir`` (e.g. one shipped inside its package): ``--data-dir``
    #: given to it is refused instead of silently ignored
    reads_data_dir: ClassVar[bool] = True

    def __init__(self, data_dir: str | None = None, **params: Any):
        self.data_dir = data_dir
        self.hparams = self.resolve(params)

    @property
    @abstractmethod
    def num_classes(self) -> int:
        """K, the number of classes (labels are 0..K-1)."""

    @property
    @abstractmethod
    def input_size(self) -> int:
        """C, the input channels per step."""

    @property
    def class_names(self) -> list[str]:
        """One display name per class (default: the class numbers)."""
        return [str(i) for i in range(self.num_classes)]

    @abstractmethod
    def load(self, split: str) -> ArrayData:
        """The whole split as tensors (cached on disk by the loader where preprocessing is costly)."""

    def identity(self) -> dict[str, Any]:
        """What the run manifest records to identify the data (name, parameters, checksums)."""
        return {"name": self.name, "params": dict(self.hparams)}


# ----------------------------------------------------------------------------------- progress hook

#: ``progress(iterable, total=None, description="") -> iterable`` in effect, or None
_PROGRESS: contextvars.ContextVar[Callable[..., Iterable] | None] = contextvars.ContextVar("snnkit_progress",
                                                                                             default=None)


@contextlib.contextmanager
def preprocessing_progress(progress: Callable[..., Iterable] | None) -> Iterator[None]:
    """Within the block, :func:`track` hands loaders' per-file loops to ``progress(iterable, total=,
    description=)``, which must yield the same items. ``None`` leaves the hook in effect unchanged."""
    token = _PROGRESS.set(progress or _PROGRESS.get())
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
