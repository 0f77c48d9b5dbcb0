"""``snnkit sweep``: a grid of settings times seeds. Each point is an ordinary run directory inside one sweep
directory (``SWEEP/<configuration>/seed-K``), trained by an ordinary ``snnkit train`` process, N at a time; a
second call resumes (finished runs skipped, partial ones continued with ``--resume``); the summary is one row per
configuration: mean ± sd over the seeds of the test accuracy at the best validation epoch. The file format is in
docs/sweeps.md; the Optuna search mode is in ``search.py``."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from attrs import frozen

from snnkit_core.contract.errors import ConfigError, RunDirError, SnnkitError, did_you_mean
from snnkit_core.engine.config import TrainConfig, absolute, dump_toml
from snnkit_core.engine.rundir import RunDir

from .launch import die_with_parent
from .resources import MAX_RUNS, MAX_SEEDS, check_count
from .runs import fmt_value, mean_sd, pm_text, run_settings, seeds_report

#: the train keys a sweep may vary (``seed`` goes to ``seeds``, component parameters are ``SECTION.KEY``)
FIELDS = tuple(a.name for a in attrs.fields(TrainConfig) if a.name not in ("params", "seed"))
SECTIONS = ("neuron", "conn", "dataset")
TOP = ("base", "grid", "seeds", "search")
#: the copy of the sweep file inside the sweep directory; its presence marks a folder as a sweep directory
SPEC_COPY = "sweep.toml"
SEARCH_KEYS = ("trials", "space", "seed")
RANGE_KEYS = ("low", "high", "log", "step", "choices")
SUMMARY_JSON, SUMMARY_CSV, SUMMARY_MD = "summary.json", "summary.csv", "summary.md"


@frozen
class Spec:
    """A parsed sweep file: the base config, the grid (key -> values) or the search space, the seeds."""

    source: Path
    text: str
    base: TrainConfig
    grid: dict[str, list]
    seeds: tuple[int, ...]
    search: dict | None = None
    #: the settings [base] gives, as ``hidden`` / ``neuron.tau_m``: with the grid's, what a run must match
    chosen: tuple[str, ...] = ()
    #: ``[[grid]]`` tables: each one's combinations, one after the other (``grid`` then holds every key they use)
    grids: tuple[dict[str, list], ...] = ()


@frozen
class Point:
    """One configuration: its folder name, the settings that differ from [base], and the full config; ``chosen``:
    the settings the sweep file gives ([base] and the grid), which an existing run must match to be continued."""

    name: str
    settings: dict[str, Any]
    config: TrainConfig
    chosen: tuple[str, ...] = ()


@frozen
class Task:
    """One run of a sweep: a point and a seed, its run directory, and what to do there
    (new | resume | done | diverged | busy | broken)."""

    point: Point
    seed: int
    run: Path
    action: str
    note: str = ""


# ------------------------------------------------------------------------------------------ the file


def load_spec(path: str | Path) -> Spec:
    """Read and check a sweep file; every problem is a ConfigError naming the file, the key and the fix."""
    path = Path(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"sweep file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"sweep file {path} cannot be read as TOML: {exc}") from None
    for key in sorted(set(data) - set(TOP)):
        raise ConfigError(f"sweep file {path}: unknown section or key {key!r}.{did_you_mean(key, TOP)} A sweep file "
                          "holds [base] (a train config), [grid] (key = [values]) or [search], and seeds = [...].")
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise ConfigError(f"sweep file {path}: base must be a table ([base]) of train keys; got {base!r}")
    base = with_preset(base, path)
    if "seed" in base:
        raise ConfigError(f"sweep file {path}: [base] sets seed; give the seeds as seeds = [0, 1, 2] at the top")
    cfg = TrainConfig.from_dict(base, source=f"sweep file {path} [base]")
    for key in ("data_dir", "init_from"):  # as for a --config file: relative to the working directory
        if getattr(cfg, key):
            cfg = cfg.evolve(**{key: absolute(getattr(cfg, key))})
    seeds = _seeds(data.get("seeds", [0]), path)
    if ("grid" in data) == ("search" in data):
        raise ConfigError(f"sweep file {path}: give exactly one of [grid] (every combination of the values) and "
                          "[search] (an Optuna search); it has " + ("both" if "grid" in data else "neither"))
    chosen = tuple(run_settings({**base, "params": base.get("params", {})}))
    if "search" in data:
        return Spec(path, text, cfg, {}, seeds, check_search(data["search"], path), chosen)
    if isinstance(data["grid"], list):  # [[grid]] tables: a table whose rows are not one product
        grids = tuple(_grid(t, path) for t in data["grid"]) or (_grid({}, path),)
        union = {k: [v for g in grids for v in g.get(k, [])] for g in grids for k in g}
        return Spec(path, text, cfg, union, seeds, chosen=chosen, grids=grids)
    return Spec(path, text, cfg, _grid(data["grid"], path), seeds, chosen=chosen)


def with_preset(base: dict[str, Any], path: Path) -> dict[str, Any]:
    """``[base] preset = "NAME"``: the shipped preset's [train] table with [base]'s other keys over it (component
    parameters merged per section); the preset's seed is left to ``seeds``."""
    if "preset" not in base:
        return base
    from .presets import get

    name, rest = base["preset"], {k: v for k, v in base.items() if k != "preset"}
    if not isinstance(name, str):
        raise ConfigError(f"sweep file {path}: [base] preset must be a preset's name (snnkit presets lists them); got "
                          f"{name!r}")
    try:
        train = {k: v for k, v in get(name).train.items() if k != "seed"}
    except ConfigError as exc:
        raise ConfigError(f"sweep file {path} [base]: {exc}") from None
    params = {s: dict(kv) for s, kv in train.get("params", {}).items()}
    for section, kv in rest.get("params", {}).items() if isinstance(rest.get("params"), dict) else ():
        params.setdefault(section, {}).update(kv if isinstance(kv, dict) else {})
    return {**train, **rest, "params": params}


def _seeds(value, path: Path) -> tuple[int, ...]:
    ok_int = isinstance(value, int) and not isinstance(value, bool)
    if ok_int and value >= 1:
        check_count(f"sweep file {path}: seeds = {value}", value, MAX_SEEDS, "each seed is a whole run")
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                 for s in value) and len(set(value)) == len(value):
        return tuple(value)
    raise ConfigError(f"sweep file {path}: seeds must be a count (seeds = 3: seeds 0, 1, 2) or a list of distinct "
                      f"non-negative integers (seeds = [0, 1, 2]); got {value!r}")


def flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """TOML dotted keys come back as nested tables (rule.bptt.lr = [...]); join them again."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def canonical_key(key: str, where: str) -> str:
    """``train.hidden`` / ``hidden`` -> ``hidden``; ``rule`` -> ``rules``; ``params.neuron.tau_m`` /
    ``neuron.tau_m`` -> ``neuron.tau_m``; anything else is refused with close matches."""
    k = key.removeprefix("train.").removeprefix("params.")
    k = "rules" if k == "rule" else k
    if k in FIELDS:
        return k
    if k == "seed":
        raise ConfigError(f"{where}: seed cannot be a grid key; give the seeds as seeds = [0, 1, 2] at the top")
    section, _, name = k.rpartition(".")
    if name and (section in SECTIONS or re.fullmatch(r"rule\.[^.]+", section)):
        return k
    known = list(FIELDS) + [f"{s}.KEY" for s in SECTIONS] + ["rule.NAME.KEY"]
    raise ConfigError(f"{where}: unknown key {key!r}.{did_you_mean(k, FIELDS + SECTIONS)} Keys are train keys "
                      f"({', '.join(FIELDS)}) or component parameters: {', '.join(known[len(FIELDS):])} "
                      "(e.g. neuron.tau_m, rule.bptt.surrogate, dataset.n_mels).")


def _grid(table, path: Path) -> dict[str, list]:
    if not isinstance(table, dict):
        raise ConfigError(f"sweep file {path}: grid must be a table ([grid]) of key = [values]; got {table!r}")
    if not table:
        raise ConfigError(f"sweep file {path}: [grid] is empty; give at least one key = [values], e.g. "
                          "lr = [0.001, 0.01] (for seeds alone, snnkit train --seeds does it)")
    grid: dict[str, list] = {}
    for key, values in flatten(table).items():
        where = f"sweep file {path} [grid]"
        name = canonical_key(key, where)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {key} must be a non-empty list of values, like {key} = [{_example(values)}]; "
                              f"got {values!r}")
        if name in grid:
            raise ConfigError(f"{where}: {key} names the same setting as another key ({name}); give it once")
        grid[name] = values
    return grid


def _example(value) -> str:
    """``[0.1, ...]`` for a single value given where a list belongs."""
    if isinstance(value, (list, dict)):
        return "VALUE, ..."
    return dump_toml({"x": value}).split(" = ", 1)[1].strip() + ", ..."


# ------------------------------------------------------------------------------------------ [search]


def check_search(table, path: Path) -> dict[str, Any]:
    """``[search]``: trials = N, seed = S (the sampler's), and ``[search.space]`` of key = {low, high[, log,
    step]} (int when low and high are integers) or key = [choices] / {choices = [...]}."""
    where = f"sweep file {path} [search]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: search must be a table ([search]); got {table!r}")
    for key in sorted(set(table) - set(SEARCH_KEYS)):
        raise ConfigError(f"{where}: unknown key {key!r}.{did_you_mean(key, SEARCH_KEYS)} [search] holds trials, "
                          "seed and [search.space].")
    trials, seed = table.get("trials"), table.get("seed", 0)
    for name, v in (("trials", trials), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "trials" else 0):
            raise ConfigError(f"{where}: {name} must be a whole number{' >= 1' if name == 'trials' else ''}, like "
                              f"{name} = 20; got {v!r}")
    space = table.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{where}: [search.space] is missing or empty; give key = {{low = ..., high = ...}} or "
                          "key = [choices], e.g. lr = { low = 1e-4, high = 1e-2, log = true }")
    out = {}
    for key, spec in _leaves(space).items():
        out[canonical_key(key, f"{where}.space")] = _range(key, spec, f"{where}.space")
    return {"trials": trials, "seed": seed, "space": out}


def _leaves(table: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted keys come back as nested tables; a table with low/high/choices is a range, not a level."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else k
        nested = isinstance(v, dict) and not set(v) & set(RANGE_KEYS)
        out.update(_leaves(v, key) if nested else {key: v})
    return out


def _range(key: str, spec, where: str) -> dict[str, Any]:
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: {key} must be a range {{low = ..., high = ...}} or a list of choices; got "
                          f"{spec!r}")
    for k in sorted(set(spec) - set(RANGE_KEYS)):
        raise ConfigError(f"{where}: {key} has an unknown field {k!r}.{did_you_mean(k, RANGE_KEYS)}")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"] or len(spec) > 1:
            raise ConfigError(f"{where}: {key} choices must be a non-empty list, alone; got {spec!r}")
        return {"kind": "choice", "choices": spec["choices"]}
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    nums = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not nums or low >= high or not isinstance(log, bool) or (log and low <= 0) or (log and step is not None):
        raise ConfigError(f"{where}: {key} wants numbers low < high (low > 0 with log = true; no step with log), "
                          f"e.g. {{low = 0.0001, high = 0.01, log = true}}; got {spec!r}")
    kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    return {"kind": kind, "low": low, "high": high, "log": log, "step": step}


# ------------------------------------------------------------------------------------------ points


def apply_settings(base: TrainConfig, settings: dict[str, Any]) -> TrainConfig:
    """``base`` with ``settings`` (canonical key -> value) applied: train keys replaced, parameters merged."""
    fields = {k: v for k, v in settings.items() if "." not in k}
    params = {k: dict(v) for k, v in base.params.items()}
    for key, value in settings.items():
        if "." in key:
            section, _, name = key.rpartition(".")
            params.setdefault(section, {})[name] = value
    return base.evolve(**fields, params=params)


def short_names(keys) -> dict[str, str]:
    """Each key's last part (``rule.bptt.lr`` -> ``lr``) where that is unambiguous, else the whole key."""
    last = [k.rpartition(".")[2] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def point_name(settings: dict[str, Any], short: dict[str, str]) -> str:
    """A readable folder name: ``lr=0.01_hidden=16,16,16``; characters a shell would trip on become ``-``."""
    if not settings:
        return "base"
    text = "_".join(f"{short.get(k, k)}={fmt_value(v)}" for k, v in settings.items())
    return re.sub(r"[^A-Za-z0-9._,=+-]", "-", text)[:120]


def grid_points(spec: Spec, check: Callable[[TrainConfig], Any] | None = None) -> list[Point]:
    """Every combination of the grid's values (of each ``[[grid]]`` table in turn), in file order;
    ``check(config)`` (e.g. the engine's build) validates each, and its error names the point."""
    import itertools
    import math

    short = short_names(list(spec.grid))
    points, seen = [], set()
    runs = sum(math.prod(map(len, g.values())) for g in spec.grids or (spec.grid,)) * len(spec.seeds)
    check_count(f"sweep file {spec.source}", runs, MAX_RUNS, "the grid's settings times the seeds; split the sweep")
    combos = [dict(zip(g, c)) for g in spec.grids or (spec.grid,) for c in itertools.product(*g.values())]
    for settings in combos:
        name = point_name(settings, short)
        while name in seen:
            name += "+"
        seen.add(name)
        points.append(make_point(spec, name, settings, check))
    return points


def make_point(spec: Spec, name: str, settings: dict[str, Any], check=None) -> Point:
    """The point ``name``: [base] with ``settings``; ``check(config)``'s errors are prefixed with the point."""
    try:
        cfg = apply_settings(spec.base, settings)
        if check is not None:
            check(cfg)
    except SnnkitError as exc:  # a bad value, an unknown parameter or component, an incompatible combination
        raise ConfigError(f"sweep file {spec.source}, configuration {name}: {exc}") from None
    return Point(name, settings, cfg, tuple(dict.fromkeys(spec.chosen + tuple(settings))))


# ------------------------------------------------------------------------------------------ the sweep dir


def open_sweep_dir(out: Path, spec: Spec) -> None:
    """Create ``out`` (or reuse a sweep directory) and keep a copy of the sweep file in it."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file; choose a folder for the sweep")
    if out.is_dir() and any(out.iterdir()) and not (out / SPEC_COPY).exists():
        raise RunDirError(f"--out {out} is a non-empty folder that is not a sweep directory (it has no {SPEC_COPY}); "
                          "choose a new folder, or the folder of the sweep you want to continue")
    (out / "configs").mkdir(parents=True, exist_ok=True)
    RunDir(out).write_text(SPEC_COPY, spec.text)


def config_file(out: Path, point: Point) -> Path:
    """``SWEEP/configs/<configuration>.toml``: the point's config as a ``--config`` file (seed from the task)."""
    path = out / "configs" / f"{point.name}.toml"
    text = dump_toml({"train": point.config.to_dict()})
    if not path.exists() or path.read_text() != text:
        RunDir(path.parent).write_text(path.name, text)
    return path


def plan(points: list[Point], seeds, out: Path, subdir: Callable[[Point], Path] | None = None) -> list[Task]:
    """One task per point and seed, with what to do in its run directory."""
    tasks = []
    for p in points:
        for s in seeds:
            run = (subdir(p) if subdir else out / p.name) / f"seed-{s}"
            action, note = run_action(run, p.config.evolve(seed=s), p.chosen)
            tasks.append(Task(p, s, run, action, note))
    return tasks


def run_action(run: Path, cfg: TrainConfig, chosen: tuple[str, ...] = ()) -> tuple[str, str]:
    """new | resume | done | diverged | busy | broken, with a note: what the sweep does with ``run``."""
    if not run.exists() or not any(run.iterdir()):
        return "new", ""
    rd = RunDir(run)
    pid = rd.holder()
    if pid:
        return "busy", f"in use by process {pid}; not touched"
    if (run / RunDir.CONFIG).exists():
        _check_same_config(rd, cfg, chosen)
    has_checkpoint = (run / RunDir.CHECKPOINT).exists()
    if not has_checkpoint:
        if rd.metrics():
            return "broken", rd.missing_checkpoint()
        return "new", "started over (no epoch had finished)"
    state = rd.status(cfg.epochs)["state"]
    if state == "diverged":
        return "diverged", rd.status(cfg.epochs).get("message") or "diverged"
    if rd.completed(cfg.epochs):
        return "done", ""
    return "resume", f"{len(rd.metrics())} of {cfg.epochs} epochs done"


def _check_same_config(rd: RunDir, cfg: TrainConfig, chosen: tuple[str, ...]) -> None:
    """Refuse a run whose config differs from the sweep's in a setting the sweep file gives (or its seed); what
    ``snnkit train`` filled in by itself is not compared."""
    saved, now = run_settings(rd.config().to_dict()), run_settings(cfg.to_dict())
    saved["seed"], now["seed"] = rd.config().seed, cfg.seed
    changed = [k for k in (*chosen, "seed") if saved.get(k) != now.get(k)]
    if changed:
        diff = "; ".join(f"{k}: {fmt_value(saved.get(k))} -> {fmt_value(now.get(k))}" for k in changed)
        raise RunDirError(f"{rd.path} was trained with another configuration than the sweep file gives now ({diff}). "
                          "The sweep will not mix them: undo the edit, or run the changed sweep with another --out.")


# ------------------------------------------------------------------------------------------ running


def threads_per_job(jobs: int, threads: int | None) -> int:
    """``--threads``, else the cores shared out between the jobs (at least one each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return threads or max(1, cores // jobs)


def train_command(task: Task, out: Path, threads: int) -> list[str]:
    """The ordinary ``snnkit train`` that runs ``task`` (in this interpreter, so the same installation)."""
    cmd = [sys.executable, "-m", "snnkit_cli", "train", "--quiet", "--threads", str(threads)]
    if task.action == "resume":
        return cmd + ["--resume", str(task.run)]
    return cmd + ["--config", str(config_file(out, task.point)), "--seed", str(task.seed), "--out", str(task.run)]


def log_path(out: Path, task: Task) -> Path:
    return out / "logs" / f"{task.run.parent.name}--seed-{task.seed}.log"


def run_tasks(tasks: list[Task], out: Path, jobs: int, threads: int | None,
              report: Callable[[str, Task, dict], None]) -> dict[Path, int]:
    """Start every new/resume task as its own process, ``jobs`` at a time; returns each run's exit code.
    ``report(event, task, info)`` hears "start" and "end" (info: rc, seconds, log). Ctrl-C stops the running
    processes (each keeps its finished epochs) and is raised again."""
    todo = [t for t in tasks if t.action in ("new", "resume")]
    n_threads = threads_per_job(jobs, threads)
    running: list[tuple[Task, subprocess.Popen, float, Any]] = []
    codes: dict[Path, int] = {}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    try:
        with _terminate_as_interrupt():
            while todo or running:
                while todo and len(running) < jobs:
                    task = todo.pop(0)
                    log = open(log_path(out, task), "ab")  # noqa: SIM115 - closed when the process ends
                    proc = subprocess.Popen(train_command(task, out, n_threads), stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_run_setup)
                    running.append((task, proc, time.monotonic(), log))
                    report("start", task, {"pid": proc.pid})
                time.sleep(0.1)
                for item in [r for r in running if r[1].poll() is not None]:
                    task, proc, t0, log = item
                    log.close()
                    running.remove(item)
                    codes[task.run] = proc.returncode
                    report("end", task, {"rc": proc.returncode, "seconds": time.monotonic() - t0,
                                         "log": str(log_path(out, task))})
    except KeyboardInterrupt:
        _stop(running)
        raise
    return codes


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM and SIGHUP (a batch scheduler's time limit, a closed terminal) stop the sweep as Ctrl-C does: the
    runs are asked to stop and keep their finished epochs, instead of the sweep dying and leaving them running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _run_setup() -> None:
    """In each run's process, before exec: Ctrl-C on (a sweep started in the background inherits it ignored, and
    its runs must still stop when the sweep asks), and SIGTERM when the sweep itself dies, even by SIGKILL."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()


def _stop(running) -> None:
    for _, proc, _, _ in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the run writes "interrupted" and keeps its finished epochs
    for _, proc, _, log in running:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def log_tail(path: str | Path, n: int = 3) -> str:
    try:
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


# ------------------------------------------------------------------------------------------ the summary


def summarise(points: list[Point], tasks: list[Task], keys: list[str]) -> dict[str, Any]:
    """One row per configuration: its settings, and over its seeds' runs the mean ± sd of the test accuracy at
    the best validation epoch, of that validation accuracy and of the epoch; each run's own numbers."""
    rows = []
    for p in points:
        runs = {t.seed: t.run for t in tasks if t.point.name == p.name and (t.run / RunDir.CONFIG).exists()}
        rep = seeds_report(runs)
        states = [RunDir(r).status(p.config.epochs)["state"] for r in runs.values()]
        rows.append({"config": p.name, "settings": p.settings, "seeds": rep["seeds"],
                     "finished": states.count("finished"), "runs": rep["runs"],
                     "test_accuracy_at_best": rep["test_accuracy_at_best"],
                     "best_val_accuracy": rep["best_val_accuracy"],
                     "best_epoch": mean_sd([r["best_epoch"] for r in rep["runs"]])})
    return {"keys": keys, "rows": rows}


def table_cells(row: dict, keys: list[str]) -> list[str]:
    """The printed/markdown cells of a summary row: (for a search, the trial), settings, n, test %, val %, epoch."""
    name = [row["config"]] if "objective" in row else []
    return (name + [fmt_value(row["settings"].get(k, "-")) for k in keys]
            + [f"{row['test_accuracy_at_best']['n']}", pm_text(row["test_accuracy_at_best"]),
               pm_text(row["best_val_accuracy"]), pm_text(row["best_epoch"], 1.0)])


def table_headers(summary: dict[str, Any]) -> list[str]:
    short = short_names(summary["keys"])
    name = ["trial"] if summary["rows"] and "objective" in summary["rows"][0] else []
    return name + [short[k] for k in summary["keys"]] + HEADERS


HEADERS = ["n", "test %", "val %", "epoch"]
CAPTION = ("n: runs; test: accuracy at the epoch of best validation accuracy (epoch); mean ± sd over the seeds, "
           "in %")


def write_summary(out: Path, summary: dict[str, Any]) -> list[Path]:
    """summary.json, summary.csv and summary.md in the sweep directory."""
    import csv
    import io

    keys = summary["keys"]
    rd = RunDir(out)
    rd.write_json(SUMMARY_JSON, summary)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["config", *keys, "n", "test_accuracy_at_best_mean", "test_accuracy_at_best_sd",
                "best_val_accuracy_mean", "best_val_accuracy_sd", "best_epoch_mean", "best_epoch_sd"])
    for r in summary["rows"]:
        t, v, e = r["test_accuracy_at_best"], r["best_val_accuracy"], r["best_epoch"]
        w.writerow([r["config"], *[fmt_value(r["settings"].get(k, "")) for k in keys], t["n"], t["mean"], t["sd"],
                    v["mean"], v["sd"], e["mean"], e["sd"]])
    rd.write_text(SUMMARY_CSV, buf.getvalue())
    head = table_headers(summary)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(table_cells(r, keys)) + " |" for r in summary["rows"]]
    note = f"\n{CAPTION}; sample sd.\n"
    rd.write_text(SUMMARY_MD, "\n".join(lines) + "\n" + note)
    return [out / SUMMARY_JSON, out / SUMMARY_CSV, out / SUMMARY_MD]
