"""``snnkit sweep FILE.toml``: parse -> sweep / search (runs of ``snnkit train``) -> render the summary."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from .errors import expected_errors
from .render import console, err_console


@click.command("sweep")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Sweep directory (default runs/<FILE's name>). The same "
                                                               "--out again continues an interrupted sweep.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Runs trained side by side, "
                                                                                       "each its own process.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads per run (default: the cores shared out "
                                                            "between the --jobs).")
@click.option("--dry-run", is_flag=True, help="Check the file and show what would run; train and write nothing.")
@expected_errors
def sweep_cmd(file, out, jobs, threads, dry_run):
    """Train a grid of configurations times seeds ([grid]) or an Optuna search ([search]) from FILE.toml.

    Each run is an ordinary run directory under the sweep directory; runs that finished are skipped, partial ones
    resumed. Writes summary.json, summary.csv and summary.md: per configuration, mean ± sd over the seeds of the
    test accuracy at the best validation epoch. The file format: docs/sweeps.md."""
    from snnkit_core.engine.rundir import RunDir
    from snnkit_core.engine.training import build as build_network

    from .resources import check_memory, check_threads
    from .sweep import grid_points, load_spec, open_sweep_dir

    def build(cfg):  # each configuration checked as `snnkit train` checks it: its memory before its network
        check_memory(cfg, False)
        return build_network(cfg)

    if threads:
        check_threads(threads)  # each run's own --threads; refused here, not in every run's log
    spec = load_spec(file)
    out = Path(out) if out else Path("runs") / Path(file).stem
    if spec.search is not None:
        from .search import check_space, import_optuna

        import_optuna()  # missing optuna: say so before anything else
        check_space(spec, build)
        points = []
    else:
        points = grid_points(spec, build)  # every configuration checked before anything runs
    if dry_run:
        return _show_plan(spec, points, out)
    open_sweep_dir(out, spec)
    with RunDir(out).locked():  # one sweep process per sweep directory; the runs have their own locks
        if spec.search is not None:
            return _search(spec, out, jobs, threads, build)
        _grid(spec, points, out, jobs, threads)


def _show_plan(spec, points, out: Path) -> None:
    from .sweep import plan

    if spec.search is not None:
        space = ", ".join(spec.search["space"])
        console.print(f"search: {spec.search['trials']} trials over {escape(space)} x {len(spec.seeds)} seed(s) "
                      f"-> {escape(str(out))}")
        return
    tasks = plan(points, spec.seeds, out) if out.is_dir() else []
    actions = {t.run: t.action for t in tasks}
    console.print(f"{len(points)} configurations x {len(spec.seeds)} seeds -> {escape(str(out))}")
    for p in points:
        for s in spec.seeds:
            run = out / p.name / f"seed-{s}"
            console.print(f"  {actions.get(run, 'new'):8} {escape(str(run))}", highlight=False)


def _reporter(total: int | None):
    """Prints one line when a run starts and when it ends (the runs' own output is in SWEEP/logs/)."""
    from .sweep import log_tail

    count = {"start": 0, "end": 0}
    of = "" if total is None else f"/{total}"

    def report(event: str, task, info: dict) -> None:
        count[event] += 1
        label = f"{task.run.parent.name}/seed-{task.seed}"
        if event == "start":
            verb = "resuming" if task.action == "resume" else "starting"
            console.print(f"[{count['start']}{of}] {verb} {label}", markup=False, highlight=False)
            return
        if info["rc"] == 0:
            from snnkit_core.engine.rundir import RunDir

            s = RunDir(task.run).read_json(RunDir.SUMMARY) or {}
            acc = s.get("test_accuracy_at_best")
            got = f"test {100 * acc:.1f}% at best val epoch {s.get('best_epoch')}" if acc is not None else "done"
            console.print(f"[done {count['end']}{of}] {label}: {got} ({info['seconds']:.0f} s)",
                          markup=False, highlight=False)
        else:
            err_console.print(f"[done {count['end']}{of}] {label}: failed (exit {info['rc']}): "
                              f"{log_tail(info['log'])} (log: {info['log']})", markup=False, highlight=False)

    return report


def _grid(spec, points, out: Path, jobs: int, threads: int | None) -> None:
    from .sweep import plan, run_tasks, summarise, write_summary

    tasks = plan(points, spec.seeds, out)
    todo = [t for t in tasks if t.action in ("new", "resume")]
    counts = {a: sum(t.action == a for t in tasks) for a in ("new", "resume", "done")}
    console.print(f"sweep {escape(str(out))}: {len(points)} configurations x {len(spec.seeds)} seeds = {len(tasks)} "
                  f"runs: {counts['new']} to start, {counts['resume']} to resume, {counts['done']} finished before",
                  highlight=False, soft_wrap=True)
    skipped = [t for t in tasks if t.action in ("busy", "broken", "diverged")]
    for t in skipped:
        err_console.print(f"skipped {t.run}: {t.action}: {t.note}", markup=False, highlight=False)
    try:
        codes = run_tasks(tasks, out, jobs, threads, _reporter(len(todo)))
    except KeyboardInterrupt:
        err_console.print(f"interrupted; every finished epoch is kept. Continue with: snnkit sweep {spec.source} "
                          f"--out {out}", markup=False, highlight=False)
        raise SystemExit(130) from None
    summary = summarise(points, tasks, list(spec.grid))
    render_summary(summary, write_summary(out, summary), f"sweep {out}")
    _fail_if(skipped, codes)


def _fail_if(skipped, codes) -> None:
    failed = [str(run) for run, rc in codes.items() if rc != 0]
    if failed or skipped:
        parts = [f"{len(failed)} run(s) failed (their logs are in SWEEP/logs/): {', '.join(failed)}"] if failed else []
        if skipped:
            parts.append(f"{len(skipped)} run(s) skipped: {', '.join(f'{t.run} ({t.action})' for t in skipped)}")
        raise click.ClickException("; ".join(parts) + ". The summary covers the runs that have records; run the "
                                   "same command again to continue.")


def _search(spec, out: Path, jobs: int, threads: int | None, build) -> None:
    from .search import run_search
    from .sweep import write_summary

    console.print(f"search {escape(str(out))}: {spec.search['trials']} trials x {len(spec.seeds)} seed(s), "
                  "maximising the validation accuracy at the best epoch (study in study.db)", highlight=False,
                  soft_wrap=True)
    try:
        res = run_search(spec, out, jobs, threads, build, _reporter(None))  # how many remain: the study knows
    except KeyboardInterrupt:
        err_console.print(f"interrupted; the study and every finished epoch are kept. Continue with: snnkit sweep "
                          f"{spec.source} --out {out}", markup=False, highlight=False)
        raise SystemExit(130) from None
    render_summary(res["summary"], write_summary(out, res["summary"]), f"search {out}")
    for problem in res["failed"]:
        err_console.print(f"failed trial: {problem}", markup=False, highlight=False)
    best = res["best"]
    if best is None:
        raise click.ClickException("no trial finished, so there is no best configuration; see the failures above")
    chosen = "  ".join(f"{k}={_fmt(v)}" for k, v in best["settings"].items())
    console.print(f"best: {best['trial']} (validation accuracy {100 * best['value']:.2f}%): {escape(chosen)}",
                  highlight=False, soft_wrap=True)
    console.print(f"written to {escape(best['file'])}; train it with: snnkit train --config {escape(best['file'])}",
                  highlight=False, soft_wrap=True)


def _fmt(v) -> str:
    from .sweep import fmt_value

    return fmt_value(v)


def render_summary(summary: dict, files: list[Path], title: str) -> None:
    """The summary table (one row per configuration), then where it was written."""
    from rich import box
    from rich.table import Table

    from .sweep import CAPTION, HEADERS, table_cells, table_headers

    keys = summary["keys"]
    t = Table(title=escape(title), box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
              caption=CAPTION, title_justify="left", caption_justify="left")
    for h in table_headers(summary):
        if h in HEADERS:
            t.add_column(h, justify="right", no_wrap=True)
        else:
            t.add_column(escape(h), overflow="fold")
    for row in summary["rows"]:
        t.add_row(*[escape(c) for c in table_cells(row, keys)])
    console.print(t)
    console.print("written: " + ", ".join(escape(str(f)) for f in files), highlight=False, soft_wrap=True)
