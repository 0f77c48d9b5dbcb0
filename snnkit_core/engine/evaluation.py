"""Evaluating a finished run: its network with the chosen weights, its splits rebuilt exactly as training saw
them, and per-split records with per-class accuracy and a confusion matrix (``RUN_DIR/eval/<split>.json``,
plain JSON that ``snnkit plot`` reads). Every file goes through :class:`~snnkit_core.engine.rundir.RunDir`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from snnkit_core.contract.dataset import ArrayData
from snnkit_core.contract.errors import ConfigError, SnnkitError
from snnkit_core.engine.data import indexed_batches, load_protocol_splits, to_batch
from snnkit_core.engine.rundir import RunDir
from snnkit_core.engine.training import build, load_weights

#: the weights a finished run is read with: ``best`` (the default of every command) or ``last``
WEIGHTS = ("best", "last")


def weights_used(run_dir: str | Path, weights: str = "best") -> str:
    """What ``weights`` means for this run: ``best`` when asked and the run has ``best.pt``, else ``last``."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be 'best' or 'last', not {weights!r}")
    return "best" if weights == "best" and (RunDir(run_dir) / RunDir.BEST).exists() else "last"


def open_for_eval(run: Path, cfg, checkpoint: str = "best"):
    """Build the network of a finished run ``cfg`` (its config, possibly changed), load its ``best`` weights
    (``best.pt``; the last checkpoint when the run has none) or ``last``, and rebuild its splits exactly as
    training saw them. Returns ``(built, used_checkpoint, checkpoint_dict, {split name: data})``."""
    used = weights_used(run, checkpoint)
    built = build(cfg)
    ck = load_weights(built, run, used)
    train, val, test, _info = load_protocol_splits(built)
    return built, used, ck, {"train": train, "test": test} | ({"val": val} if val is not None else {})


def predict(built, data: ArrayData, batch_size: int) -> tuple[float, torch.Tensor]:
    """Mean loss over ``data`` and the predicted class of every example (no gradients, fixed encoding)."""
    net, rule = built.network, built.gradient_rule
    net.eval()
    total, preds = 0.0, []
    try:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            for x, y, idx in indexed_batches(data, batch_size, False, gen, built.device):
                loss, logits = rule.eval_step(net, to_batch(built, x, y, idx))
                total += float(loss) * len(y)
                preds.append(logits.argmax(1).cpu())
    finally:
        net.train()
    p = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64)
    return total / max(len(data), 1), p


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
    run = RunDir(run_dir)
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
        loss, pred = predict(built, have[s], batch_size or cfg.batch_size)
        rec = eval_record(s, loss, have[s].y, pred, classes)
        rec["checkpoint"], rec["epoch"] = used, out["epoch"]
        out["splits"][s] = rec
        if write:
            run.write_json(f"eval/{s}.json", rec)
    return out


def load_run(run_dir: str | Path, weights: str = "best", data_dir: str | None = None):
    """``(built, network, used)`` of a run directory with its ``best`` weights (``best.pt``, the best-on-validation
    epoch; the last checkpoint when the run has none) or ``last``, in eval mode on the CPU, for inspection (plot,
    export). ``used`` names the weights loaded. ``data_dir`` overrides the run's data root (only the dataset's shapes
    and, for plots, its test split are read)."""
    used = weights_used(run_dir, weights)
    run = RunDir(run_dir)
    cfg = run.config()
    # inspection runs on the CPU (a GPU run's Triton backend falls back to torch); the data may have moved
    cfg = cfg.evolve(device="cpu", backend="auto" if cfg.backend == "triton" else cfg.backend,
                     **({"data_dir": str(Path(data_dir).expanduser().absolute())} if data_dir else {}))
    built = build(cfg)
    load_weights(built, run.path, used)
    built.network.eval()
    return built, built.network, used
