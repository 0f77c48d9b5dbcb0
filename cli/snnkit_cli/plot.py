"""``snnkit plot RUN_DIR``: parse -> snnkit_cli.plots -> render the list of PNGs written."""

from __future__ import annotations

import click

from .errors import expected_errors
from .helptext import option


@click.command("plot")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--sample", type=click.IntRange(min=0), default=0, show_default=True, help="Test example shown in the "
                                                                                         "spike raster.")
@click.option("--samples", type=click.IntRange(min=1), default=64, show_default=True, help="Test examples the "
                                                                                           "firing-rate histograms "
                                                                                           "average over.")
@click.option("--weights", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best.pt (best validation epoch; the last checkpoint when the run has none), as `snnkit eval` and "
                   "`export`, or checkpoint.pt (last).")
@click.option("--data-dir", type=click.Path(), help="Data root, when the run's data has moved (default: the run's).")
@click.option("--metrics-only", is_flag=True, help="Only what metrics.jsonl and eval/*.json hold (no network run: no "
                                                   "raster, no rates).")
@option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder the PNGs go to (e.g. when the run "
        "folder is read-only).", show_default="RUN_DIR/plots")
@expected_errors
def plot_cmd(run_dir, sample, samples, weights, data_dir, metrics_only, out_dir):
    """Write PNGs to RUN_DIR/plots/ (or --out): curves, spike raster, firing rates, bip/asrc, confusion matrices."""
    from snnkit_cli.plots import plot_run

    from .render import warn_damaged

    warn_damaged(run_dir)
    paths = plot_run(run_dir, sample=sample, samples=samples, weights=weights, network=not metrics_only,
                     data_dir=data_dir, out_dir=out_dir)
    if not metrics_only:
        from snnkit.run import weights_used

        click.echo(f"weights: {weights_used(run_dir, weights)} (the raster and rates run the network with them)")
    for p in paths:
        click.echo(f"wrote {p}")
