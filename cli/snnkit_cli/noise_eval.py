"""``snnkit eval RUN --noise P[,P...]``: parse -> snnkit_cli.robustness -> render (table, JSON, PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from .render import console


def noise_eval(run_dir, noise, seed, split, checkpoint, data_dir, batch_size, device, as_json, no_write, threads=None,
               kind="multiplicative"):
    from snnkit_cli.host import set_threads
    from snnkit_cli.robustness import noise_curve, parse_proportions, plot_noise
    from snnkit_core.contract.errors import MissingDependencyError, SnnkitError

    from .runs import find_runs

    set_threads(threads)
    ps = parse_proportions(noise)
    if split == "all":
        raise SnnkitError("--noise evaluates one split at a time: use --split test (default), val or train")
    runs = find_runs(run_dir)
    if not runs:
        raise SnnkitError(f"{run_dir} holds no run directory at any depth (the manifest.json and "
                          "config.toml that snnkit train writes)")
    data_dir = data_dir and str(Path(data_dir).expanduser().absolute())
    results = []
    for run in runs:
        rec = noise_curve(run, ps, seed=seed, split=split, checkpoint=checkpoint, data_dir=data_dir,
                          batch_size=batch_size, device=device, write=not no_write, kind=kind)
        if not no_write:
            try:
                rec["png"] = str(plot_noise({run.name: rec["rows"]}, run / "noise" / f"{split}.png"))
            except MissingDependencyError as exc:
                rec["png"] = None
                if not as_json:
                    console.print(f"[yellow]no PNG[/]: {escape(str(exc))}")
        results.append(rec)
        if as_json:
            continue
        t = Table(title=f"{escape(str(run))}: {split} under {rec['kind']} noise (weights: {rec['checkpoint']}, "
                        f"epoch {rec['epoch']}, seed {seed})", show_edge=False)
        for col in ("P", "accuracy", "frame accuracy", "Acc(P)/Acc(0)"):
            t.add_column(col, justify="right")
        for r in rec["rows"]:
            t.add_row(f"{r['p']:.2f}", f"{100 * r['accuracy']:.2f}%", f"{100 * r['frame_accuracy']:.2f}%",
                      "-" if r["ratio"] is None else f"{r['ratio']:.3f}")
        console.print(t)
        if not no_write:
            console.print(
                f"wrote {escape(str(run / 'noise' / f'{split}.json'))}"
                + (f" and {escape(rec['png'])}" if rec.get("png") else "")
            )
    if as_json:
        click.echo(json.dumps(results, indent=2))


def robust_ratio_eval(run_dir, noisy_dir, noise, seed, split, checkpoint, data_dir, batch_size, device, as_json,
                      no_write, threads=None, kind="multiplicative"):
    """``snnkit eval RUN --robust-ratio NOISY``: the paper's robust ratio of every run under RUN trained without
    noise, against the runs under NOISY trained with it (same seed); the mean and sd over them when several."""
    from snnkit_cli.host import set_threads
    from snnkit_cli.robustness import mean_ratios, parse_proportions, robust_ratio, trained_noise
    from snnkit_core.contract.errors import ConfigError, SnnkitError
    from snnkit_core.engine.rundir import RunDir

    from .runs import find_runs

    set_threads(threads)
    ps = parse_proportions(noise) if noise is not None else None
    if kind != "multiplicative":
        raise ConfigError("--robust-ratio uses the noise the input-noise rule trains with (multiplicative); drop "
                          f"--noise-kind {kind}")
    if split == "all":
        raise SnnkitError("--robust-ratio evaluates one split at a time: use --split test (default), val or train")
    clean = [r for r in find_runs(run_dir) if trained_noise(RunDir(r).config()) == 0]
    if not clean:
        raise SnnkitError(f"{run_dir} holds no run trained without input noise: give the p = 0 run(s) of the sweep")
    noisy = find_runs(noisy_dir)
    data_dir = data_dir and str(Path(data_dir).expanduser().absolute())
    recs = [robust_ratio(r, noisy, ps, seed=seed, split=split, checkpoint=checkpoint, data_dir=data_dir,
                         batch_size=batch_size, device=device, write=not no_write) for r in clean]
    summary = mean_ratios(recs)
    if as_json:
        click.echo(json.dumps({"runs": recs, "mean": summary}, indent=2))
        return
    for rec in recs:
        _ratio_table(f"{escape(rec['run'])}: {split}, weights {rec['checkpoint']}, noise seed {seed}", rec["rows"])
    if len(recs) > 1:
        _ratio_table(f"mean ± sd over {len(recs)} runs", summary)
    if not no_write:
        console.print(f"wrote noise/robust-ratio-{split}.json in each of the {len(recs)} run(s)")


def _ratio_table(title: str, rows: list[dict]) -> None:
    t = Table(title=title, show_edge=False)
    for col in ("P", "Acc(clean-trained, noisy)", "Acc(noise-trained, noisy)", "robust ratio"):
        t.add_column(col, justify="right")

    def cell(r, key, pct):
        v, sd = r[key], r.get(f"{key}_sd")
        if v is None:
            return "-"
        text = f"{100 * v:.2f}%" if pct else f"{v:.3f}"
        return text if sd is None else text + (f" ± {100 * sd:.2f}" if pct else f" ± {sd:.3f}")

    for r in rows:
        t.add_row(f"{r['p']:.2f}", cell(r, "clean_trained", True), cell(r, "noise_trained", True),
                  cell(r, "robust_ratio", False))
    console.print(t)
