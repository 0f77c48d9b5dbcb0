"""The evaluation protocol: a validation split, the best-on-validation record, per-class evaluation, seeds, runs.

Validation. A run chooses its best epoch on a validation split and never on the test split:

* a dataset with its own ``val`` split (gsc, ssc, mnist with ``val_size``, an ``arrays`` file with ``x_val``)
  uses it;
* otherwise ``val_fraction`` (default 0.1) of the training split is carved off, stratified by class and drawn
  with ``seed``: from each class ``c`` with ``n_c`` training examples, ``round(val_fraction * n_c)`` go to
  validation (at least one when ``n_c >= 2``, never all), so every class keeps its share;
* ``val_fraction = 0`` and no ``val`` split: no validation; nothing is chosen, the last epoch is the result.

The carve runs after ``--limit`` (so ``--limit 100`` gives about 90 train and 10 validation examples) and is
recomputed, identically, by ``snnkit eval`` from the run's config: ``RUN_DIR/config.toml`` fixes it.

Run records written here: ``summary.json`` (:func:`summary`) and, by ``snnkit eval``,
``eval/<split>.json`` (:func:`eval_record`). Both are plain JSON so other tools (``snnkit plot``) read them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from attrs import evolve

from snnkit_core.engine import rundir
from snnkit_core.contract.errors import CheckpointError, ConfigError, SnnkitError
from snnkit_core.contract.interfaces import ArrayData

#: added to the run's seed for the validation carve, so it draws apart from ``--limit``'s subset
VAL_SEED_OFFSET = 7919


# ---------------------------------------------------------------------------------------- validation


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
        k = int(math.floor(fraction * len(idx) + 0.5)) if fraction > 0 else 0
        if fraction > 0 and len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        val.append(idx[:k])
        keep.append(idx[k:])
    keep_t = torch.cat(keep).sort().values if keep else torch.zeros(0, dtype=torch.int64)
    val_t = torch.cat(val).sort().values if val else torch.zeros(0, dtype=torch.int64)
    return keep_t, val_t


def take(data: ArrayData, idx: torch.Tensor) -> ArrayData:
    """The examples ``idx`` of ``data`` (a stride-0 ``expand`` stays one; ``encode`` kept)."""
    return evolve(data, x=data.rows(idx), y=data.y[idx])


def load_protocol_splits(built, progress=None) -> tuple[ArrayData, ArrayData | None, ArrayData, dict[str, Any]]:
    """``(train, val, test, info)`` for ``built``'s config: the dataset's own ``val`` split when it has one,
    else a stratified carve of ``val_fraction`` of train (module docstring), else ``val = None``.
    ``info`` is what the manifest records under ``"validation"``."""
    from snnkit_core.engine.data import preprocessing_progress

    cfg, ds = built.config, built.dataset
    fraction = cfg.val_fraction
    with preprocessing_progress(progress):
        train = ds.load("train").subset(cfg.limit, cfg.seed)
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
    info["counts"] = {"train": len(train), "val": 0 if val is None else len(val), "test": len(test)}
    info["test_split"] = test_split
    if val is not None:
        info["val_per_class"] = torch.bincount(val.y, minlength=ds.num_classes).tolist()
    return train, val, test, info


# -------------------------------------------------------------------------------------- best + summary


def summary(records: list[dict], best: dict | None) -> dict[str, Any]:
    """``summary.json``: the best-on-validation epoch (1-based) with its validation and test accuracy, and
    the final test accuracy. ``best`` is ``{"epoch", "val_accuracy", "test_accuracy"}`` or None (no
    validation: the best fields are null)."""
    return {
        "best_epoch": best["epoch"] if best else None,
        "best_val_accuracy": best["val_accuracy"] if best else None,
        "test_accuracy_at_best": best["test_accuracy"] if best else None,
        "final_test_accuracy": records[-1]["test_accuracy"] if records else None,
        "epochs_done": len(records),
    }


def write_json_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rundir.atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The run's per-epoch records, read defensively: a torn or damaged line is skipped, not fatal."""
    return rundir.read_metrics(Path(run_dir) / "metrics.jsonl", skip_bad=True)


def best_from_metrics(records: list[dict]) -> dict | None:
    """The first epoch with the highest ``val_accuracy`` (ties keep the earlier epoch), or None."""
    best = None
    for r in records:
        v = r.get("val_accuracy")
        if isinstance(v, (int, float)) and (best is None or v > best["val_accuracy"]):
            best = {"epoch": r["epoch"], "val_accuracy": v, "test_accuracy": r.get("test_accuracy")}
    return best


# ---------------------------------------------------------------------------------------- evaluation


def predict(built, data: ArrayData, batch_size: int) -> tuple[float, torch.Tensor]:
    """Mean loss over ``data`` and the predicted class of every example (no gradients, fixed encoding)."""
    from snnkit_core.engine.training import _indexed_batches, to_batch

    net, rule = built.network, built.gradient_rule
    net.eval()
    total, preds = 0.0, []
    try:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            for x, y, idx in _indexed_batches(data, batch_size, False, gen, built.device):
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


def find_runs(root: str | Path) -> list[Path]:
    """``root`` itself if it is a run directory (holds config.toml), else every run directory below it, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise SnnkitError(f"{root} is not a folder")
    if (root / "config.toml").is_file():
        return [root]
    return sorted(p.parent for p in root.rglob("config.toml") if p.is_file())


def open_for_eval(run: Path, cfg, checkpoint: str = "best"):
    """Build the network of a finished run ``cfg`` (its config, possibly changed), load its ``best`` weights
    (``best.pt``; the last checkpoint when the run has none) or ``last``, and rebuild its splits exactly as
    training saw them. Returns ``(built, used_checkpoint, checkpoint_dict, {split name: data})``."""
    from snnkit_core.engine.training import build, load_weights

    if checkpoint not in ("best", "last"):
        raise ConfigError(f"checkpoint must be best or last; got {checkpoint!r}")
    built = build(cfg)
    used = "best" if checkpoint == "best" and (run / "best.pt").exists() else "last"
    ck = load_weights(built, run, used)
    train, val, test, _info = load_protocol_splits(built)
    return built, used, ck, {"train": train, "test": test} | ({"val": val} if val is not None else {})


def evaluate_splits(run_dir: str | Path, splits: Iterable[str] | str = "all", *, checkpoint: str = "best",
                    dataset: str | None = None, dataset_params: dict[str, Any] | None = None, data_dir: str | None = None, batch_size: int | None = None, limit: int | None = None,
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
    from snnkit_core.engine.training import read_run_config

    run = Path(run_dir)
    cfg = read_run_config(run)
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
    built, used, ck, have = open_for_eval(run, cfg, checkpoint)
    order = [s for s in ("train", "val", "test") if s in have]
    if splits == "all":
        wanted = order
    else:
        wanted = [splits] if isinstance(splits, str) else list(splits)
        for s in wanted:
            if s not in have:
                raise SnnkitError(f"run {run} has splits {order}, not {s!r}" + (
                    " (it was trained without validation: val_fraction 0 and no val split in the dataset)" if s == "val" else ""))
    classes = list(built.dataset.class_names)
    out: dict[str, Any] = {"run": str(run), "checkpoint": used, "epoch": int(ck.get("epoch", -1)) + 1, "splits": {}}
    for s in wanted:
        loss, pred = predict(built, have[s], batch_size or cfg.batch_size)
        rec = eval_record(s, loss, have[s].y, pred, classes)
        rec["checkpoint"], rec["epoch"] = used, out["epoch"]
        out["splits"][s] = rec
        if write:
            write_json_atomic(rec, run / "eval" / f"{s}.json")
    return out


# --------------------------------------------------------------------------------------------- seeds


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> [0, 1, 2]; ``"0,1,5"`` -> [0, 1, 5]. Seeds are distinct non-negative integers."""
    t = str(text).replace(" ", "")
    try:
        if "," not in t:
            n = int(t)
            if n < 1:
                raise ValueError
            return list(range(n))
        seeds = [int(p) for p in t.split(",") if p != ""]
    except ValueError:
        raise ConfigError(f"--seeds wants a count (3: seeds 0,1,2) or a comma list of seeds (0,1,2); got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds wants distinct non-negative integers, like 0,1,2; got {text!r}")
    return seeds


def mean_sd(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of ``values``."""
    v = [float(x) for x in values if isinstance(x, (int, float))]
    if not v:
        return {"mean": None, "sd": None, "n": 0, "values": []}
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return {"mean": m, "sd": sd, "n": len(v), "values": v}


def seeds_report(runs: dict[int, str | Path]) -> dict[str, Any]:
    """``seeds.json``: per seed the final and best-on-validation test accuracy (from each run's
    metrics.jsonl), and their mean and sd over the seeds."""
    per = []
    for seed, run in runs.items():
        recs = read_metrics(run)
        best = best_from_metrics(recs)
        per.append({"seed": seed, "run": str(run), "epochs_done": len(recs),
                    "final_test_accuracy": recs[-1]["test_accuracy"] if recs else None,
                    "best_epoch": best["epoch"] if best else None,
                    "best_val_accuracy": best["val_accuracy"] if best else None,
                    "test_accuracy_at_best": best["test_accuracy"] if best else None})
    return {
        "seeds": [p["seed"] for p in per],
        "runs": per,
        "final_test_accuracy": mean_sd([p["final_test_accuracy"] for p in per]),
        "test_accuracy_at_best": mean_sd([p["test_accuracy_at_best"] for p in per]),
        "best_val_accuracy": mean_sd([p["best_val_accuracy"] for p in per]),
    }


# ---------------------------------------------------------------------------------------------- runs


def run_status(run: Path, epochs: int | None) -> str:
    """finished | running | killed | diverged | interrupted: :func:`snnkit_core.engine.rundir.read_status`."""
    return rundir.read_status(run, epochs)["state"]


def describe_run(run: str | Path) -> dict[str, Any]:
    """One row of ``snnkit runs``: components, dataset, epochs done/asked, best validation epoch, test
    accuracy at it and at the end, mean seconds per epoch, status. A config that cannot be read gives a row
    with ``error``, not an exception."""
    import tomllib

    run = Path(run)
    row: dict[str, Any] = {"run": str(run)}
    try:
        cfg = tomllib.loads((run / "config.toml").read_text())
        cfg = cfg.get("train", cfg)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        row.update(status="unreadable", error=f"config.toml: {exc}")
        return row
    rules = cfg.get("rules", [])
    rules = [rules] if isinstance(rules, str) else list(rules) if isinstance(rules, list) else []
    epochs = cfg.get("epochs") if isinstance(cfg.get("epochs"), int) else None
    records = read_metrics(run)
    best = best_from_metrics(records)
    secs = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    row.update({
        "neuron": cfg.get("neuron"), "conn": cfg.get("conn"), "rules": rules, "dataset": cfg.get("dataset"),
        "seed": cfg.get("seed"), "epochs_done": len(records), "epochs": epochs,
        "best_epoch": best["epoch"] if best else None,
        "best_val_accuracy": best["val_accuracy"] if best else None,
        "test_accuracy_at_best": best["test_accuracy"] if best else None,
        "final_test_accuracy": records[-1].get("test_accuracy") if records else None,
        "seconds_per_epoch": sum(secs) / len(secs) if secs else None,
        "status": run_status(run, epochs),
    })
    return row


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    root = Path(root)
    if not root.exists():
        raise SnnkitError(f"{root} does not exist; `snnkit runs DIR` lists the run directories under DIR (default runs/)")
    return [describe_run(r) for r in find_runs(root)]
