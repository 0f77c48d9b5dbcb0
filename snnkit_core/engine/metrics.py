"""Metrics beside ``metrics.jsonl``: ``metrics.csv`` (always) and TensorBoard scalars (``--tensorboard``).

``metrics.jsonl`` stays the record of truth (one JSON object per epoch); everything here is derived from its
records, so a resumed run (whose ``metrics.jsonl`` is truncated to the checkpoint's epoch) gets a matching CSV.

CSV columns, in this order, the same for every run so spreadsheets and scripts can rely on them:

    epoch, train_loss, train_accuracy, val_loss, val_accuracy, test_loss, test_accuracy, seconds, lr

(``val_*`` empty when the run has no validation split), then every other key the components record, flattened
with dots in the order they first appear: nested dicts ``bip.layer0.tau_m_mean``, lists by index
``recurrence.layer0.alpha.3``. A key a record lacks is an empty cell. Accuracies are fractions (0..1),
losses are the rule's loss, ``seconds`` is the epoch's wall time, ``lr`` the learning rate used in it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from snnkit_core.contract.errors import CheckpointError, MissingDependencyError

BASE_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "seconds", "lr")


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"bip": {"layer0": {"x": 1}}, "a": [1, 2]}`` -> ``{"bip.layer0.x": 1, "a.0": 1, "a.1": 2}``."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out.update(flatten({str(i): v for i, v in enumerate(value)}, name + "."))
        else:
            out[name] = value
    return out


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/metrics.jsonl``, in order; a clear error when it is missing or malformed."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise CheckpointError(f"{run_dir} has no metrics.jsonl (not a run directory, or no epoch has finished yet)")
    records = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} line {i} is not JSON ({exc.msg}); the file is damaged") from None
        if not isinstance(rec, dict) or "epoch" not in rec:
            raise CheckpointError(f"{path} line {i} is not an epoch record (a JSON object with an 'epoch' key)")
        records.append(rec)
    return records


def csv_text(records: Iterable[dict[str, Any]]) -> str:
    """The CSV of ``records`` (see the module docstring for the columns)."""
    flat = [flatten(r) for r in records]
    columns = list(BASE_COLUMNS)
    seen = set(columns)
    for r in flat:
        for key in r:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for r in flat:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def write_csv(run_dir: str | Path) -> Path:
    """(Re)write ``RUN_DIR/metrics.csv`` from ``metrics.jsonl``, atomically (a reader never sees half a file)."""
    run = Path(run_dir)
    target = run / "metrics.csv"
    tmp = run / ".metrics.csv.tmp"
    tmp.write_text(csv_text(read_metrics(run)))
    os.replace(tmp, target)
    return target


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a record as TensorBoard tags: ``loss/train``, ``accuracy/test`` ...; the rest by
    their flattened name (``bip/layer0/tau_m_mean``). ``epoch`` is the step, not a scalar."""
    tags = {
        "train_loss": "loss/train", "val_loss": "loss/val", "test_loss": "loss/test",
        "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/val", "test_accuracy": "accuracy/test",
        "seconds": "time/epoch_seconds", "lr": "lr",
    }
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
