"""``snnkit train --tensorboard``: each epoch record's scalars in ``RUN_DIR/tensorboard/`` (optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snnkit_core.contract.errors import MissingDependencyError
from snnkit_core.engine.metrics import flatten


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a record as TensorBoard tags: ``loss/train``, ``accuracy/test`` ...; the rest by
    their flattened name (``bip/layer0/tau_m_mean``). ``epoch`` is the step, not a scalar."""
    tags = {"train_loss": "loss/train", "val_loss": "loss/val", "test_loss": "loss/test",
            "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/val", "test_accuracy": "accuracy/test",
            "seconds": "time/epoch_seconds", "lr": "lr"}
    out = {}
    for key, value in flatten(record).items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[tags.get(key, key.replace(".", "/"))] = float(value)
    return out


class TensorBoardWriter:
    """Writes each epoch record's scalars to ``RUN_DIR/tensorboard/`` (step = epoch), flushed every epoch.

    Needs the optional ``tensorboard`` package (``pip install snnkit[tensorboard]``); without it, construction
    raises :class:`MissingDependencyError` before anything is trained.
    """

    def __init__(self, run_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch raises ImportError when the tensorboard package is absent
            raise MissingDependencyError(
                f"--tensorboard needs the tensorboard package ({exc}); install it with "
                f"`pip install 'snnkit[tensorboard]'` (or `pip install tensorboard`), or train without --tensorboard"
            ) from None
        self.log_dir = Path(run_dir) / "tensorboard"
        self._make = SummaryWriter
        self._writer = None  # opened with the first record, so a run that fails to start leaves no folder

    def add(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = self._make(log_dir=str(self.log_dir))
        step = int(record["epoch"])
        for tag, value in scalars(record).items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
