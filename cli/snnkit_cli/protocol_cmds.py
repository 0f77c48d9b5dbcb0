"""``snnkit eval`` (all splits, per-class accuracy, confusion matrix, whole folders) and ``snnkit runs``;
the rendering of ``snnkit train --seeds``. Parse -> snnkit_cli.evaluate / .runs -> render."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from .render import console, err_console, warn_damaged


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _pct1(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _expected_errors(fn):
    from .errors import expected_errors

    return expected_errors(fn)


# --------------------------------------------------------------------------------------------- eval


@click.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="test", show_default=True, help="train, val, test, or all (every split the run has).")
@click.option("--weights", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best.pt (best validation epoch; the last checkpoint when the run has none), as `snnkit plot` and "
                   "`export`, or checkpoint.pt (last epoch).")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), hidden=True,
              help="Deprecated spelling of --weights; still works, with a warning.")
@click.option("--dataset", help="Evaluate on another dataset with the same shapes.")
@click.option("--set", "sets", multiple=True, metavar="dataset.KEY=VALUE",
              help="Dataset parameter for this evaluation (e.g. dataset.test_speakers=george); repeatable.")
@click.option("--data-dir", type=click.Path(), help="Data root, when the run's data has moved (default: the run's).")
@click.option("--limit", type=click.IntRange(min=1), help="At most N examples (default: the run's own --limit, if "
                                                          "any).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Evaluation batch size (default: the run's).")
@click.option("--device", help="auto, cpu or cuda (default: the run's).")
@click.option("--backend", type=click.Choice(["auto", "triton", "torch", "reference"]), help="Scan implementation "
                                                                                             "(default: the run's).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON instead of tables.")
@click.option("--no-write", is_flag=True, help="Do not write RUN_DIR/eval/<split>.json.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch and the CPU scans (default: "
                                                            "torch's, one per core).")
@click.option("--noise", metavar="P[,P...]", help="Evaluate with noise of proportion P (--noise-kind) and report "
              "per-sample and per-frame accuracy and Acc(P)/Acc(0) for each P; writes RUN_DIR/noise/<split>.json and a "
              "PNG (with matplotlib). See docs/rules/reward-prop.md.")
@click.option("--noise-kind", type=click.Choice(["multiplicative", "uniform"]), default="multiplicative",
              show_default=True, help="multiplicative: every hidden layer's input x becomes x(1 + P sgn(u - 0.5)) per "
              "element and step (the NRR-SNN authors'; the input-noise rule); uniform: a proportion P of the network "
              "input's entries is replaced by values uniform over the split's range.")
@click.option("--noise-seed", type=int, default=0, show_default=True, help="Seed of the noise draws.")
@click.option("--robust-ratio", "noisy_dir", type=click.Path(exists=True, file_okay=False), metavar="NOISY_DIR",
              help="The NRR-SNN paper's robust ratio, Acc(RUN_DIR tested with noise P) / Acc(run trained with noise P, "
              "tested with it), for each P (--noise, default: every P found): NOISY_DIR holds the runs trained with "
              "--rule input-noise --set rule.input-noise.p=P and the same seed (e.g. the sweep folder); writes "
              "RUN_DIR/noise/robust-ratio-<split>.json.")
@click.option("--neurobench", is_flag=True, help="NeuroBench's metrics (footprint, connection and activation sparsity, "
              "synaptic operations, accuracy), computed by the neurobench package on --split (test by default); "
              "writes RUN_DIR/eval/neurobench.json. Needs pip install snnkit[neurobench]. See docs/neurobench.md.")
def eval_cmd(run_dir, split, weights, checkpoint, dataset, sets, data_dir, limit, batch_size, device, backend, as_json,
             no_write, threads, noise, noise_kind, noise_seed, noisy_dir, neurobench):
    """Evaluate a run (or every run under a folder): accuracy, per-class accuracy and confusion matrix per split.

    Writes RUN_DIR/eval/<split>.json unless --no-write, --dataset or --set (numbers on other data are not the run's).
    """
    if checkpoint is not None:
        err_console.print(f"[yellow]warning[/]: --checkpoint is deprecated and will be removed; use --weights "
                          f"{checkpoint} (the option `snnkit plot` and `snnkit export` take too)")
        weights = checkpoint
    checkpoint = weights
    if neurobench:
        return _expected_errors(_neurobench)(run_dir, split, checkpoint, dataset, sets, data_dir, limit, batch_size,
                                             device, as_json, no_write, threads, noise)
    if noisy_dir is not None:
        from .noise_eval import robust_ratio_eval

        return _expected_errors(robust_ratio_eval)(run_dir, noisy_dir, noise, noise_seed, split, checkpoint, data_dir,
                                                   batch_size, device, as_json, no_write, threads, noise_kind)
    if noise is not None:
        from .noise_eval import noise_eval

        return _expected_errors(noise_eval)(run_dir, noise, noise_seed, split, checkpoint, data_dir, batch_size, device,
                                            as_json, no_write, threads, noise_kind)
    _expected_errors(_eval)(run_dir, split, checkpoint, dataset, sets, data_dir, limit, batch_size, device, backend,
                            as_json, no_write, threads)


def _neurobench(run_dir, split, checkpoint, dataset, sets, data_dir, limit, batch_size, device, as_json, no_write,
                threads, noise):
    from snnkit_cli.host import set_threads
    from snnkit_core.contract.errors import ConfigError

    from .neurobench import neurobench_eval, render

    given = [name for name, v in (("--dataset", dataset), ("--set", sets), ("--limit", limit), ("--noise", noise))
             if v]
    if given:
        raise ConfigError(f"--neurobench measures the run on its own data; drop {', '.join(given)}")
    if split == "all":
        raise ConfigError("--neurobench measures one split; give --split test (the default), val or train")
    set_threads(threads)
    rec = neurobench_eval(run_dir, split, checkpoint, data_dir, batch_size, device, write=not no_write)
    if as_json:
        click.echo(json.dumps(rec, indent=1))
    else:
        render(rec)


def _eval(run_dir, split, checkpoint, dataset, sets, data_dir, limit, batch_size, device, backend, as_json, no_write,
          threads=None):
    from snnkit_cli.host import keep_freed_memory, set_threads

    set_threads(threads)
    keep_freed_memory()
    from snnkit_cli.evaluate import evaluate_splits
    from snnkit_cli.options import parse_sets
    from snnkit_core.contract.errors import ConfigError, SnnkitError

    from .runs import find_runs

    parsed = parse_sets(sets)
    if set(parsed) - {"dataset"}:
        raise ConfigError("eval --set takes dataset parameters only (dataset.KEY=VALUE); got "
                          f"{', '.join(sorted(set(parsed) - {'dataset'}))}")
    runs = find_runs(run_dir)
    if not runs:
        raise SnnkitError(f"{run_dir} holds no run directory at any depth (the manifest.json and "
                          "config.toml that snnkit train writes)")
    splits = "all" if split == "all" else [split]
    data_dir = data_dir and str(Path(data_dir).expanduser().absolute())
    results, failures = [], []
    for run in runs:
        warn_damaged(run)
        try:
            res = evaluate_splits(run, splits, checkpoint=checkpoint, dataset=dataset,
                                  dataset_params=parsed.get("dataset"), data_dir=data_dir, batch_size=batch_size,
                                  limit=limit, device=device, backend=backend, write=not (no_write or dataset or sets))
        except SnnkitError as exc:
            if len(runs) == 1:
                raise
            failures.append({"run": str(run), "error": str(exc)})
            continue
        results.append(res)
        if not as_json:
            _render_eval(res, detail=len(runs) == 1)
        if "not_written" in res:  # a read-only run folder: evaluated, not recorded
            err_console.print(f"note: {res['not_written']}", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        click.echo(json.dumps({"results": results, "failures": failures}, indent=2))
        if failures:
            raise click.ClickException(f"{len(failures)} of {len(runs)} runs could not be evaluated (see \"failures\")")
        return
    if len(runs) > 1:
        t = Table(title=f"{len(results)} runs under {escape(str(run_dir))}")
        for col in ("run", "weights", "epoch", "split", "n", "accuracy", "loss"):
            t.add_column(col, justify="left" if col in ("run", "weights", "split") else "right")
        for res in results:
            for s, rec in res["splits"].items():
                t.add_row(escape(res["run"]), res["checkpoint"], str(res["epoch"]), s, str(rec["n"]),
                          _pct(rec["accuracy"]), f"{rec['loss']:.4f}")
        console.print(t)
        for f in failures:
            console.print(f"[red]failed[/] {escape(f['run'])}: {escape(f['error'])}")
        if failures:
            raise click.ClickException(f"{len(failures)} of {len(runs)} runs could not be evaluated (listed above)")


def _render_eval(res: dict, detail: bool) -> None:
    for s, rec in res["splits"].items():
        console.print(
            f"{escape(res['run'])}: {s} accuracy [bold]{100 * rec['accuracy']:.2f}%[/] ({rec['n']} examples), "
            f"loss {rec['loss']:.4f}  [dim](weights: {res['checkpoint']}, epoch {res['epoch']})[/]",
            soft_wrap=True,  # one line per split, whatever the path's length (scripts grep it)
        )
        if not detail:
            continue
        classes = rec["classes"]
        cm = rec["confusion"]
        if len(classes) <= 20:
            from rich import box

            t = Table(title=f"{s}: confusion matrix (rows = true class, columns = predicted class, by index)",
                      box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
            t.add_column("true class", overflow="ellipsis", max_width=16)
            for j in range(len(classes)):
                t.add_column(str(j), justify="right", no_wrap=True)
            t.add_column("n", justify="right", no_wrap=True)
            t.add_column("acc %", justify="right", no_wrap=True)
            for i, c in enumerate(classes):
                acc = rec["per_class_accuracy"][i]
                t.add_row(escape(f"{i} {c}"), *[str(v) for v in cm[i]], str(sum(cm[i])),
                          "-" if acc is None else f"{100 * acc:.1f}")
        else:  # a wide matrix does not fit a terminal: per-class accuracy only; the JSON has the matrix
            t = Table(title=f"{s}: per-class accuracy (the confusion matrix is in eval/{s}.json)", show_edge=False)
            for col in ("class", "n", "accuracy", "most confused with"):
                t.add_column(col, justify="left" if col in ("class", "most confused with") else "right")
            for i, c in enumerate(classes):
                off = [(v, j) for j, v in enumerate(cm[i]) if j != i and v > 0]
                worst = max(off)[1] if off else None
                t.add_row(escape(c), str(sum(cm[i])), _pct(rec["per_class_accuracy"][i]),
                          escape(classes[worst]) if worst is not None else "-")
        console.print(t)


# --------------------------------------------------------------------------------------------- runs


@click.command("runs")
@click.argument("folder", default="runs", type=click.Path())
@click.option("--each", is_flag=True, help="One row per run instead of one per configuration.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per run, instead of a table.")
def runs_cmd(folder, each, as_json):
    """The runs under FOLDER (default runs/), one row per configuration: the runs of a sweep or of --seeds that
    differ only in their seed share a row with mean ± sd and the settings that differ between rows. --each: one
    row per run (components, epochs, best validation epoch, test accuracy, status)."""
    _expected_errors(_runs)(folder, as_json, each)


def _runs(folder, as_json, each=False):
    from .runs import list_runs

    if not each and not as_json:
        return _runs_grouped(folder)
    rows = list_runs(folder)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"no run directories under {escape(str(folder))}")
        return
    t = _runs_table(f"runs under {escape(str(folder))}", "second line: neuron/conn/rule dataset; best: best validation "
                    "epoch; test: test accuracy at it; %", ("seed", "ep", "best", "val", "test", "final", "s/ep"))
    root = Path(folder)
    for r in rows:
        path = Path(r["run"])
        name = escape(str(path.relative_to(root)) if path != root and path.is_relative_to(root) else r["run"])
        if "error" in r:
            t.add_row(f"{name}\n[dim]{escape(r['error'])}[/]", *["-"] * 7, f"[red]{escape(r['status'])}[/]")
            continue
        st = r["status"]
        t.add_row(f"{name}\n[dim]{escape(str(r['neuron']))}/{escape(str(r['conn']))}/{escape('+'.join(r['rules']))} "
                  f"{escape(str(r['dataset']))}[/]", str(r["seed"]), f"{r['epochs_done']}/{r['epochs']}",
                  str(r["best_epoch"] or "-"), _pct1(r["best_val_accuracy"]), _pct1(r["test_accuracy_at_best"]),
                  _pct1(r["final_test_accuracy"]),
                  "-" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.1f}",
                  f"[{_COLOUR.get(st, 'white')}]{st}[/]")
    console.print(t)
    for r in rows:
        if r.get("damaged"):
            err_console.print(f"warning: {r['damaged']}", markup=False, highlight=False, soft_wrap=True)


_COLOUR = {"finished": "green", "running": "cyan", "killed": "red", "diverged": "red", "interrupted": "yellow"}


def _runs_table(title: str, caption: str, numeric: tuple[str, ...]) -> Table:
    """One wide text column (the run or configuration, and a dim second line) and narrow number columns, so a
    row stays one line of numbers at 80 columns and when piped."""
    from rich import box

    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), title_justify="left",
              caption=caption, caption_justify="left")
    t.add_column("run" if "seed" in numeric else "runs", overflow="fold", ratio=1)
    for col in numeric:
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("status", overflow="fold", min_width=8)
    return t


def _runs_grouped(folder) -> None:
    from .runs import fmt_value, group_runs, pm_text

    res = group_runs(folder)
    groups, differ, common = res["groups"], res["differ"], res["common"]
    if not groups:
        console.print(f"no run directories under {escape(str(folder))}")
        return
    same = " ".join(f"{k}={fmt_value(common[k])}" for k in ("neuron", "conn", "rules", "dataset") if k in common)
    t = _runs_table(f"{sum(len(g['runs']) for g in groups)} runs under {escape(str(folder))} in {len(groups)} "
                    "configurations", (f"all: {escape(same)}\n" if same else "") + "n: runs; test: test accuracy at "
                    "the best validation epoch (best); mean ± sd over the runs, %; --each: one row per run",
                    ("n", "ep", "test", "val", "best"))
    for g in groups:
        setting = " ".join(f"{k.removeprefix('rule.')}={fmt_value(g['settings'].get(k))}" for k in differ
                           if k in g["settings"])
        label = escape(g["folder"]) + (f"\n[dim]{escape(g['error'] or setting)}[/]" if g["error"] or setting else "")
        st = g["status"]
        t.add_row(label, str(len(g["runs"])), f"{g['epochs_done']}/{g['epochs'] or '-'}",
                  pm_text(g["test_accuracy_at_best"]), pm_text(g["best_val_accuracy"]),
                  "-" if g["best_epoch"]["mean"] is None else f"{g['best_epoch']['mean']:.3g}",
                  f"[{_COLOUR.get(st.split()[0], 'white')}]{escape(st)}[/]")
    console.print(t)
    for note in res["damaged"]:
        err_console.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)


# -------------------------------------------------------------------------------------------- seeds


def render_seeds(report: dict, path: Path) -> None:
    t = Table(title=f"{len(report['seeds'])} seeds", show_edge=False)
    for col in ("seed", "epochs", "best val epoch", "val acc", "test acc at best", "final test acc"):
        t.add_column(col, justify="right")
    for r in report["runs"]:
        t.add_row(str(r["seed"]), str(r["epochs_done"]), str(r["best_epoch"] or "-"), _pct(r["best_val_accuracy"]),
                  _pct(r["test_accuracy_at_best"]), _pct(r["final_test_accuracy"]))
    console.print(t)
    for key, label in (("final_test_accuracy", "final test accuracy"), ("test_accuracy_at_best", "test accuracy at "
                                                                                                 "best validation "
                                                                                                 "epoch")):
        m = report[key]
        if m["mean"] is not None:
            console.print(f"{label}: [bold]{100 * m['mean']:.2f} ± {100 * m['sd']:.2f}%[/] (mean ± sd over {m['n']} "
                          "seeds)")
    console.print(f"written to {escape(str(path))}")
