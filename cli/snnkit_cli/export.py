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
