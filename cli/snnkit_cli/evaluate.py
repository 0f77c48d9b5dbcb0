"""``snnkit eval``'s records: a run evaluated on several splits with per-class accuracy and a confusion matrix
(``RUN_DIR/eval/<split>.json``, plain JSON that ``snnkit plot`` reads), written through
:class:`~snnkit_core.engine.rundir.RunDir`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from snnkit.run import open_for_eval, require_run
from snnkit_core.contract.errors import ConfigError, SnnkitError
from snnkit_core.engine.rundir import RunDir
from snnkit_core.engine.training import predict


def confusion(y: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    k = num_classes
    return torch.bincount(y.cpu() * k + pred.cpu(), minlength=k * k).reshape(k, k)


def eval_record(split: str, loss: float, y: torch.Tensor, pred: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """``eval/<split>.json``: n, loss, accuracy, per-class accuracy (None for a class with no example) and
    the confusion matrix (rows = true class, columns = predicted)."""
    cm = confusion(y, pred, len(classes))
    per_class = [(float(cm[i, i]) / float(cm[i].sum())) if cm[i].sum() > 0 else None for i in range(len(classes))]
    n = len(y)
    return {
        "split": split, "n": n, "loss": loss, "accuracy": float((y.cpu() == pred).sum()) / max(n, 1),
        "classes": list(classes), "per_class_accuracy": per_class, "confusion": cm.tolist(),
    }


def evaluate_splits(run_dir: str | Path, splits: Iterable[str] | str = "all", *, checkpoint: str = "best",
                    dataset: str | None = None, dataset_params: dict[str, Any] | None = None,
                    data_dir: str | None = None, batch_size: int | None = None, limit: int | None = None,
                    device: str | None = None, backend: str | None = None, write: bool = True) -> dict[str, Any]:
    """Evaluate a run on several splits at once with per-class accuracy and a confusion matrix.

    ``splits``: ``"all"`` (train, val if the run has one, test) or names among those. ``checkpoint``: ``best``
    (``best.pt``, the best-on-validation weights; the last checkpoint when the run has none) or ``last``.
    ``dataset`` evaluates on another dataset with the same shapes (its own splits, carved the same way);
    ``dataset_params`` overrides the dataset's parameters (e.g. ``{"test_speakers": "george"}``).
    The splits are rebuilt exactly as training saw them (same ``--limit`` subset and validation carve).
    Returns ``{"run", "checkpoint", "epoch", "splits": {name: eval_record}}`` and, with ``write``, writes
    each record to ``RUN_DIR/eval/<split>.json``.
    """
    run = require_run(run_dir)
    cfg = run.config()
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive number of examples, not {limit}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive number of examples, not {batch_size}")
    changes: dict[str, Any] = {"device": device or cfg.device, "backend": backend or cfg.backend}
    if limit is not None:
        changes["limit"] = limit
    if data_dir:
        changes["data_dir"] = data_dir
    if dataset:
        changes["dataset"] = dataset
    if dataset_params:
        params = {k: dict(v) for k, v in cfg.params.items()}
        params.setdefault("dataset", {}).update(dataset_params)
        changes["params"] = params
    cfg = cfg.evolve(**changes)
    built, used, ck, have = open_for_eval(run.path, cfg, checkpoint)
    order = [s for s in ("train", "val", "test") if s in have]
    if splits == "all":
        wanted = order
    else:
        wanted = [splits] if isinstance(splits, str) else list(splits)
        for s in wanted:
            if s not in have:
                raise SnnkitError(f"run {run} has splits {order}, not {s!r}" + (
                    " (it was trained without validation: val_fraction 0 and no val split in the "
                    "dataset)" if s == "val" else ""))
    classes = list(built.dataset.class_names)
    out: dict[str, Any] = {"run": str(run), "checkpoint": used, "epoch": int(ck.get("epoch", -1)) + 1, "splits": {}}
    for s in wanted:
        total, pred, y = predict(built, have[s], batch_size or cfg.batch_size)
        rec = eval_record(s, total / max(len(y), 1), y, pred, classes)
        rec["checkpoint"], rec["epoch"] = used, out["epoch"]
        out["splits"][s] = rec
        if write and "not_written" not in out:
            out.update(_write_eval(run, s, rec))
    return out


def _write_eval(run: RunDir, split: str, rec: dict) -> dict:
    """Write ``eval/<split>.json``; a run folder that cannot be written (read-only, full) is still evaluated:
    ``{"not_written": why}`` says so instead of failing."""
    try:
        run.write_json(f"eval/{split}.json", rec)
    except OSError as exc:
        return {"not_written": f"{run / 'eval'} cannot be written ({exc.strerror}), so the results above are not "
                               "recorded there; pass --no-write to skip recording"}
    return {}
