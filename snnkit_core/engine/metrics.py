"""What is derived from a run's epoch records (``metrics.jsonl``, the record of truth): ``metrics.csv``,
``summary.json`` and the best epoch. The CSV's columns, the same for every run: docs/plots.md, "`metrics.csv`"."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

BASE_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                "seconds", "lr")


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


def csv_text(records: Iterable[dict[str, Any]]) -> str:
    """The CSV of ``records``: :data:`BASE_COLUMNS`, then the other keys flattened in order of appearance."""
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


def best_from_metrics(records: list[dict]) -> dict | None:
    """The first epoch with the highest ``val_accuracy`` (ties keep the earlier epoch), or None."""
    scored = [r for r in records if isinstance(r.get("val_accuracy"), (int, float))]
    r = max(scored, key=lambda r: r["val_accuracy"], default=None)  # max keeps the first of equal ones
    return r and {"epoch": r["epoch"], "val_accuracy": r["val_accuracy"], "test_accuracy": r.get("test_accuracy")}


def summary(records: list[dict]) -> dict[str, Any]:
    """``summary.json``: the best-on-validation epoch (1-based) with its validation and test accuracy (null without
    validation), the final test accuracy and the number of epochs done."""
    best = best_from_metrics(records) or {"epoch": None, "val_accuracy": None, "test_accuracy": None}
    return {"best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"], "test_accuracy_at_best":
            best["test_accuracy"], "final_test_accuracy": records[-1]["test_accuracy"] if records else None,
            "epochs_done": len(records)}


def health_warnings(records: list[dict], chance: float, k: int = 3) -> dict[str, str]:
    """``{kind: sentence}`` for what the last epochs of ``records`` say is going wrong: the training loss rose in
    each of the last ``k`` epochs (``"loss-rising"``) or stands above twice its lowest (``"loss-diverging"``: a climb
    with dips between), the training accuracy lost over half its best gain on chance (``"accuracy-collapsing"``: the
    loss need not rise), or the validation accuracy stayed at most ``chance`` for ``k`` epochs (``"val-at-chance"``)."""
    out, loss = {}, [r["train_loss"] for r in records[-k - 1:]]
    if len(loss) == k + 1 and all(b > a for a, b in zip(loss, loss[1:])):
        out["loss-rising"] = (f"the training loss has risen for {k} epochs in a row ({loss[0]:.4g} -> {loss[-1]:.4g}, "
                              f"epoch {records[-1]['epoch']}): the learning rate may be too large")
    if loss and loss[-1] > 2 * (low := min(r["train_loss"] for r in records)) > 0:
        out["loss-diverging"] = (f"the training loss ({loss[-1]:.4g}, epoch {records[-1]['epoch']}) is more than twice "
                                 f"its lowest ({low:.4g}): training is diverging; lower the learning rate")
    acc, c = [r.get("train_accuracy") or 0.0 for r in records], max(chance, 0.0)
    if acc and (top := max(acc)) - c > 0.1 and acc[-1] - c < (top - c) / 2:
        out["accuracy-collapsing"] = (f"the training accuracy ({acc[-1]:.1%}, epoch {records[-1]['epoch']}) lost "
                                      f"over half its gain on chance (best {top:.1%}): training diverges; lower --lr")
    val = [r.get("val_accuracy") for r in records[-k:]]
    if len(val) == k and all(isinstance(v, (int, float)) and v <= chance for v in val):
        out["val-at-chance"] = (f"the validation accuracy has stayed at chance (<= {chance:.1%}) for {k} epochs "
                                f"(epoch {records[-1]['epoch']}): the network is not learning")
    return out
