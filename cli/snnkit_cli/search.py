"""``snnkit sweep`` search mode: Optuna proposes configurations from ranges and choices; each is trained over
the sweep's seeds as ordinary runs (``SWEEP/trials/trial-NNNN/seed-K``) and scored by the mean validation
accuracy at the best validation epoch, never by test. The study lives in ``SWEEP/study.db`` (SQLite), so a
second call continues it (a trial a killed sweep left running is resumed); ``best.toml`` is the best
configuration as a ``--config`` file. Needs the extra ``snnkit[search]`` (optuna)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from snnkit_core.contract.errors import MissingDependencyError, SnnkitError
from snnkit_core.engine.config import dump_toml
from snnkit_core.engine.rundir import RunDir

from .sweep import Point, Spec, Task, apply_settings, fmt_value, make_point, plan, run_tasks, summarise

STUDY_DB, BEST_TOML, STUDY_NAME = "study.db", "best.toml", "snnkit-sweep"


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("a [search] sweep needs optuna, which is not installed: pip install "
                                     "snnkit[search] (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def candidates(spec: dict[str, Any]) -> list:
    """The values checked before a search starts: both ends of a range, every choice."""
    return spec["choices"] if spec["kind"] == "choice" else [spec["low"], spec["high"]]


def check_space(spec: Spec, check: Callable) -> None:
    """Build [base] with each end of each range and each choice, so a misspelt parameter or an impossible
    combination fails now, not in trial 7."""
    for key, r in spec.search["space"].items():
        for value in candidates(r):
            make_point(spec, f"{key}={fmt_value(value)}", {key: value}, check)


# ------------------------------------------------------------------------------------------ the study


def suggest(trial, key: str, r: dict[str, Any]) -> None:
    if r["kind"] == "choice":  # labels, so lists (hidden sizes) can be choices too
        trial.suggest_categorical(key, [fmt_value(c) for c in r["choices"]])
    elif r["kind"] == "int":
        trial.suggest_int(key, r["low"], r["high"], step=r["step"] or 1, log=r["log"])
    else:
        trial.suggest_float(key, r["low"], r["high"], step=r["step"], log=r["log"])


def settings_of(space: dict[str, dict], params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, r in space.items():
        v = params[key]
        out[key] = {fmt_value(c): c for c in r["choices"]}[v] if r["kind"] == "choice" else v
    return out


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def open_study(spec: Spec, out: Path):
    """The study in ``out/study.db``, created or continued. The sampler's seed is the file's plus the trials the
    study holds, so a continued search is reproducible and does not draw the first call's values again."""
    optuna = import_optuna()
    study = optuna.create_study(study_name=STUDY_NAME, storage=f"sqlite:///{(out / STUDY_DB).absolute()}",
                                direction="maximize", load_if_exists=True)
    study.sampler = optuna.samplers.TPESampler(seed=spec.search["seed"] + len(study.get_trials(deepcopy=False)))
    return optuna, study


def run_search(spec: Spec, out: Path, jobs: int, threads: int | None, check: Callable,
               report: Callable[[str, Task, dict], None]) -> dict[str, Any]:
    """Run trials until the study has ``trials`` finished ones (``jobs`` trials at a time), then write best.toml.
    Returns {"summary", "best", "failed"}."""
    optuna, study = open_study(spec, out)
    state = optuna.trial.TrialState
    space, wanted = spec.search["space"], spec.search["trials"]
    batch = [t for t in study.get_trials(deepcopy=False) if t.state == state.RUNNING]  # left by a killed sweep
    failed: list[str] = []
    while True:
        ended = sum(t.state in (state.COMPLETE, state.FAIL, state.PRUNED) for t in study.get_trials(deepcopy=False))
        for _ in range(min(jobs, wanted - ended - len(batch))):
            trial = study.ask()
            for key, r in space.items():
                suggest(trial, key, r)
            batch.append(trial)
        if not batch:
            break
        failed += _run_batch(spec, out, study, batch, jobs, threads, check, report)
        batch = []
    return {"summary": search_summary(spec, out, study, state), "best": write_best(spec, out, study), "failed": failed}


def _run_batch(spec, out, study, batch, jobs, threads, check, report) -> list[str]:
    """Train each trial of ``batch`` over the seeds and tell the study its value (or that it failed)."""
    points, failed = {}, []
    for t in batch:
        try:
            points[t.number] = make_point(spec, trial_name(t.number), settings_of(spec.search["space"], t.params),
                                          check)
        except SnnkitError as exc:
            study.tell(t.number, state=_fail_state())
            failed.append(str(exc))
    tasks = plan(list(points.values()), spec.seeds, out, subdir=lambda p: out / "trials" / p.name)
    codes = run_tasks(tasks, out, jobs, threads, report)
    for number, p in points.items():
        mine = [t for t in tasks if t.point.name == p.name]
        bad = [str(t.run) for t in mine if codes.get(t.run, 0) != 0 or t.action in ("busy", "broken", "diverged")]
        value = objective([t.run for t in mine])
        if bad or value is None:
            study.tell(number, state=_fail_state())
            failed.append(f"{p.name}: " + (f"runs that did not finish: {', '.join(bad)}" if bad else
                                           "no validation accuracy (set val_fraction > 0 in [base])"))
        else:
            study.tell(number, value)
    return failed


def _fail_state():
    import optuna

    return optuna.trial.TrialState.FAIL


def objective(runs: list[Path]) -> float | None:
    """Mean over the seeds' runs of the validation accuracy at the best validation epoch (never test)."""
    vals = [(RunDir(r).read_json(RunDir.SUMMARY) or {}).get("best_val_accuracy") for r in runs]
    if not vals or any(not isinstance(v, (int, float)) for v in vals):
        return None
    return sum(vals) / len(vals)


def search_summary(spec: Spec, out: Path, study, state) -> dict[str, Any]:
    """The grid summary's shape, one row per finished trial, plus each trial's state and value."""
    points, values = [], {}
    for t in study.get_trials(deepcopy=False):
        if t.state in (state.COMPLETE, state.FAIL) and set(t.params) == set(spec.search["space"]):
            settings = settings_of(spec.search["space"], t.params)
            points.append(Point(trial_name(t.number), settings, apply_settings(spec.base, settings)))
            values[trial_name(t.number)] = (t.state.name.lower(), t.value)
    tasks = plan(points, spec.seeds, out, subdir=lambda p: out / "trials" / p.name) if points else []
    summary = summarise(points, tasks, list(spec.search["space"]))
    for row in summary["rows"]:
        row["state"], row["objective"] = values[row["config"]]
    return summary


def write_best(spec: Spec, out: Path, study) -> dict[str, Any] | None:
    """best.toml: the best trial's configuration as a ``--config`` file, with its score in a comment."""
    try:
        best = study.best_trial
    except ValueError:  # no trial completed
        return None
    settings = settings_of(spec.search["space"], best.params)
    cfg = apply_settings(spec.base, settings)
    seeds = ", ".join(map(str, spec.seeds))
    head = (f"# best of the search in {out}: {trial_name(best.number)}, validation accuracy at the best epoch "
            f"{best.value:.4f} (mean over seeds {seeds})\n# train it: snnkit train --config {out / BEST_TOML}\n")
    RunDir(out).write_text(BEST_TOML, head + dump_toml({"train": cfg.to_dict()}))
    return {"trial": trial_name(best.number), "value": best.value, "settings": settings, "file": str(out / BEST_TOML)}
