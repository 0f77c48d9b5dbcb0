"""``snnkit export RUN_DIR --format nir --out FILE``: parse -> snnkit_cli.nir_export -> render."""

from __future__ import annotations

import click

from .errors import expected_errors


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["nir"]), default="nir", show_default=True, help="Export format.")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Output file (default RUN_DIR/network.nir).")
@click.option("--dt", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Seconds per snnkit step; NIR time constants are steps x dt. snnTorch's NIR import assumes 1e-4.")
@click.option("--weights", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best.pt (best validation epoch; the last checkpoint when the run has none) or checkpoint.pt (last "
                   "epoch).")
@expected_errors
def export_cmd(run_dir, fmt, out, dt, weights):
    """Write a run's trained network as a NIR graph (lif layers, affine, self/dense recurrence, skip edges)."""
    from pathlib import Path

    from snnkit_cli.nir_export import export_run

    res = export_run(run_dir, out or Path(run_dir) / "network.nir", fmt=fmt, dt=dt, weights=weights)
    click.echo(f"wrote {res['path']}: NIR graph with {res['nodes']} nodes and {res['edges']} edges (dt = {res['dt']:g} "
               "s "
               f"per step; weights: {res['weights']})")


@click.command("import-nir")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory to write.")
@click.option("--dataset", help="Dataset the network is for (its channels and classes must match the graph's; "
                                "default: the shipped espeak-digits).")
@click.option("--data-dir", type=click.Path(), help="Data root, as for snnkit train.")
@click.option("--rule", "rules", multiple=True, help="Learning rule recorded for fine-tuning (default bptt).")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="Dataset or rule parameter.")
@click.option("--dt", type=click.FloatRange(min=0, min_open=True), help="Seconds per step of the graph (default: its "
              "metadata's dt, else 1e-4, snnTorch's).")
@expected_errors
def import_nir_cmd(file, out, dataset, data_dir, rules, sets, dt):
    """Build a snnkit network from a NIR graph of CubaLIF layers (feed-forward, self or dense recurrent, skip) and
    write it as a run directory for snnkit eval, train --init-from and export. See docs/export.md."""
    from snnkit_cli.nir_import import import_run

    res = import_run(file, out, {"dataset": dataset, "data_dir": data_dir}, tuple(rules), sets, dt)
    click.echo(f"wrote {res['path']}: lif network, conn {res['conn']}, hidden {','.join(map(str, res['hidden']))} "
               f"(tau_s = {res['tau_s']:g} steps, v_th = {res['v_th']:g}, dt = {res['dt']:g} s) for dataset "
               f"{res['dataset']}")
