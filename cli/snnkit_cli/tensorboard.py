"""``snnkit train --logger tensorboard`` (alias ``--tensorboard``): each epoch record in ``RUN_DIR/tensorboard/``
(optional extra). Lists in a record (a layer's span weights) are one histogram each, with their mean as a scalar,
not one tag per element; the run's configuration is in the HParams tab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from snnkit_core.contract.errors import MissingDependencyError
from snnkit_core.engine.metrics import flatten

from .logger import Logger

_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "test_loss": "loss/test",
         "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/val", "test_accuracy": "accuracy/test",
         "seconds": "time/epoch_seconds", "lr": "lr"}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a record as TensorBoard tags: ``loss/train``, ``accuracy/test`` ...; the rest by
    their flattened name (``bip/layer0/tau_m_mean``); a list of numbers by its mean (``asrc/layer0/alpha/mean``).
    ``epoch`` is the step, not a scalar."""
    out = {}
    for key, value in flatten(histograms(record, keep=False)).items():
        if key != "epoch" and _number(value):
            out[_TAGS.get(key, key.replace(".", "/"))] = float(value)
    for tag, values in histograms(record).items():
        out[f"{tag}/mean"] = sum(values) / len(values)
    return out


def histograms(record: dict[str, Any], keep: bool = True, prefix: str = ""):
    """``keep``: the record's lists of numbers by tag (``asrc/layer0/alpha``); not ``keep``: the record without
    them."""
    lists, rest = {}, {}
    for key, value in record.items():
        if isinstance(value, dict):
            inner = histograms(value, keep, f"{prefix}{key}/")
            if keep:
                lists.update(inner)
            else:
                rest[key] = inner
        elif isinstance(value, (list, tuple)) and value and all(_number(v) for v in value):
            lists[f"{prefix}{key}"] = [float(v) for v in value]
        else:
            rest[key] = value
    return lists if keep else rest


class TensorBoardLogger(Logger):
    """Writes each epoch record to ``RUN_DIR/tensorboard/`` (step = epoch), flushed every epoch.

    Needs the optional ``tensorboard`` package (``pip install snnkit[tensorboard]``); without it, construction
    raises :class:`MissingDependencyError` before anything is trained.
    """

    name = "tensorboard"
    summary = "RUN_DIR/tensorboard/: scalars, one histogram per list (span weights), HParams (tensorboard extra)"

    def __init__(self, run_dir: str | Path, params: dict[str, Any] | None = None):
        super().__init__(Path(run_dir), params or {})
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch raises ImportError when the tensorboard package is absent
            raise MissingDependencyError(
                f"--logger tensorboard needs the tensorboard package ({exc}); install it with "
                f"`pip install 'snnkit[tensorboard]'` (or `pip install tensorboard`), or train without it"
            ) from None
        self.log_dir = self.run_dir / "tensorboard"
        self._make = SummaryWriter
        self._writer = None  # opened with the first record, so a run that fails to start leaves no folder

    def _open(self):
        from torch.utils.tensorboard.summary import hparams

        self._writer = self._make(log_dir=str(self.log_dir))
        values = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in self.params.items()}
        metrics = {tag: 0.0 for tag in ("accuracy/test", "accuracy/val", "loss/train")}
        for summary in hparams(values, metrics):  # in this run's own folder, beside its scalars
            self._writer.file_writer.add_summary(summary)

    def epoch(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            self._open()
        step = int(record["epoch"])
        for tag, value in scalars(record).items():
            self._writer.add_scalar(tag, value, step)
        for tag, values in histograms(record).items():
            self._writer.add_histogram(tag, np.asarray(values), step)
        self._writer.flush()

    def close(self, finished: bool = True) -> None:
        if self._writer is not None:
            self._writer.close()
