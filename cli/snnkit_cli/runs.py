"""``snnkit runs`` and ``--seeds``: find the run directories under a folder, describe each in one row, and
summarise a set of seeds (mean and sample sd). Reads every file through ``RunDir``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from snnkit_core.contract.errors import ConfigError, SnnkitError
from snnkit_core.engine.metrics import best_from_metrics
from snnkit_core.engine.rundir import RunDir, is_run

from .resources import MAX_SEEDS, check_count


def find_runs(root: str | Path) -> list[Path]:
    """``root`` itself if it is a run directory (holds config.toml and is a run by ``rundir.is_run``: a folder of
    your own with a config.toml is not one), else every run directory below it, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise SnnkitError(f"{root} is not a folder")
    if (root / RunDir.CONFIG).is_file() and is_run(root):
        return [root]
    return sorted(p.parent for p in root.rglob(RunDir.CONFIG) if p.is_file() and is_run(p.parent))


def run_status(run: Path, epochs: int | None) -> str:
    """finished | running | killed | diverged | interrupted: ``RunDir.status``."""
    return RunDir(run).status(epochs)["state"]


def describe_run(run: str | Path) -> dict[str, Any]:
    """One row of ``snnkit runs``: components, dataset, epochs done/asked, best validation epoch, test
    accuracy at it and at the end, mean seconds per epoch, status. A config that cannot be read gives a row
    with ``error``, not an exception."""
    rd = RunDir(run)
    row: dict[str, Any] = {"run": str(rd)}
    try:
        cfg = rd.config_toml()
    except SnnkitError as exc:
        row.update(status="unreadable", error=str(exc))
        return row
    rules = cfg.get("rules", [])
    rules = [rules] if isinstance(rules, str) else list(rules) if isinstance(rules, list) else []
    epochs = cfg.get("epochs") if isinstance(cfg.get("epochs"), int) else None
    records = rd.metrics()
    best = best_from_metrics(records)
    secs = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    row.update({"neuron": cfg.get("neuron"), "conn": cfg.get("conn"), "rules": rules, "dataset": cfg.get("dataset"),
                "seed": cfg.get("seed"), "epochs_done": len(records), "epochs": epochs,
                "best_epoch": best["epoch"] if best else None,
                "best_val_accuracy": best["val_accuracy"] if best else None,
                "test_accuracy_at_best": best["test_accuracy"] if best else None,
                "final_test_accuracy": records[-1].get("test_accuracy") if records else None,
                "seconds_per_epoch": sum(secs) / len(secs) if secs else None, "status": run_status(rd.path, epochs),
                "damaged": rd.damage_note()})
    return row


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    root = Path(root)
    if not root.exists():
        raise SnnkitError(f"{root} does not exist; `snnkit runs DIR` lists the run directories under DIR (default "
                          "runs/)")
    return [describe_run(r) for r in find_runs(root)]


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> [0, 1, 2]; ``"0,1,5"`` -> [0, 1, 5]. Seeds are distinct non-negative integers."""
    t = str(text).replace(" ", "")
    try:
        if "," not in t:
            n = int(t)
            if n < 1:
                raise ValueError
            check_count(f"--seeds {text}", n, MAX_SEEDS, "each seed is a whole run")
            return list(range(n))
        seeds = [int(p) for p in t.split(",") if p != ""]
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError("--seeds wants a count (3: seeds 0,1,2) or a comma list of seeds (0,1,2); got "
                          f"{text!r}") from None
    check_count("--seeds", len(seeds), MAX_SEEDS, "each seed is a whole run")
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
        recs = RunDir(run).metrics()
        best = best_from_metrics(recs)
        per.append({"seed": seed, "run": str(run), "epochs_done": len(recs),
                    "final_test_accuracy": recs[-1]["test_accuracy"] if recs else None,
                    "best_epoch": best["epoch"] if best else None,
                    "best_val_accuracy": best["val_accuracy"] if best else None,
                    "test_accuracy_at_best": best["test_accuracy"] if best else None})
    return {"seeds": [p["seed"] for p in per], "runs": per,
            "final_test_accuracy": mean_sd([p["final_test_accuracy"] for p in per]),
            "test_accuracy_at_best": mean_sd([p["test_accuracy_at_best"] for p in per]),
            "best_val_accuracy": mean_sd([p["best_val_accuracy"] for p in per])}


# --------------------------------------------------------------------------------------------- groups

#: config keys that do not make two runs different experiments: the seed, and where and how a run executes
NOT_SETTINGS = ("seed", "data_dir", "device", "backend", "data_on_device")


def fmt_value(v) -> str:
    """A setting as short text: ``0.001``, ``16,16,16``, ``true``; ``-`` for None."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(fmt_value(x) for x in v)
    return str(v)


def pm_text(m: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± sd`` of a :func:`mean_sd` result (the mean alone for one value; ``-`` for none)."""
    if m["mean"] is None:
        return "-"
    if m["n"] < 2:
        return f"{scale * m['mean']:.{digits}f}"
    return f"{scale * m['mean']:.{digits}f} ± {scale * m['sd']:.{digits}f}"


def run_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """A run's config.toml as flat settings (``neuron.tau_m`` for parameters), without :data:`NOT_SETTINGS`."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        if key == "params" and isinstance(value, dict):
            for section, kv in value.items():
                if isinstance(kv, dict):
                    flat.update({f"{section}.{name}": v for name, v in kv.items()})
        elif key not in NOT_SETTINGS:
            flat[key] = value
    return flat


def group_runs(root: str | Path) -> dict[str, Any]:
    """The runs under ``root`` grouped by configuration (every setting but the seed and where it ran): per group
    its runs, seeds, and mean ± sd of the test accuracy at the best validation epoch, of that validation accuracy
    and of the epoch; ``differ``: the settings whose values differ between the groups."""
    import json

    groups: dict[str, dict[str, Any]] = {}
    for row in list_runs(root):
        try:
            settings = run_settings(RunDir(row["run"]).config_toml())
        except SnnkitError:
            settings = {"run": row["run"]}  # unreadable: a group of its own
        key = json.dumps(settings, sort_keys=True, default=str)
        groups.setdefault(key, {"settings": settings, "rows": []})["rows"].append(row)
    out = [_group(g["settings"], g["rows"], Path(root)) for g in groups.values()]
    keys = sorted({k for g in out for k in g["settings"]})
    differ = [k for k in keys if len({json.dumps(g["settings"].get(k), default=str) for g in out}) > 1]
    common = {k: out[0]["settings"].get(k) for k in keys if k not in differ} if out else {}
    damaged = [r["damaged"] for g in groups.values() for r in g["rows"] if r.get("damaged")]
    return {"groups": out, "differ": differ, "common": common, "damaged": damaged}


def _group(settings: dict[str, Any], rows: list[dict], root: Path) -> dict[str, Any]:
    import os
    from collections import Counter

    paths = [Path(r["run"]) for r in rows]
    folder = Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0]
    label = str(folder.relative_to(root)) if folder.is_relative_to(root) and folder != root else str(folder)
    states = Counter(r["status"] for r in rows)
    return {"folder": label, "settings": settings, "runs": [r["run"] for r in rows],
            "seeds": [r.get("seed") for r in rows], "error": next((r["error"] for r in rows if "error" in r), None),
            "epochs_done": min((r.get("epochs_done") or 0) for r in rows), "epochs": rows[0].get("epochs"),
            "test_accuracy_at_best": mean_sd([r.get("test_accuracy_at_best") for r in rows]),
            "best_val_accuracy": mean_sd([r.get("best_val_accuracy") for r in rows]),
            "best_epoch": mean_sd([r.get("best_epoch") for r in rows]),
            "status": next(iter(states)) if len(states) == 1 else ", ".join(f"{s} {n}" for s, n in states.items())}
