"""``snnkit bench``: parse -> snnkit_cli.bench.run_benchmarks -> render."""

from __future__ import annotations

import json

import click
from rich.table import Table

from .errors import expected_errors
from .render import console


@click.command()
@click.option("--workload", "workloads", multiple=True, help="Workload group (scsr-ti46, src-psmnist, src-ssc, ff-16k, "
                                                             "alif, nrr, st-rsbp, tiny); repeatable. Default: all "
                                                             "on CUDA, tiny on CPU.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--repeats", default=20, show_default=True, type=click.IntRange(min=1), help="Timed steps per path "
                                                                                           "(median reported).")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0), help="Untimed steps per path "
              "before the timed ones (compilation, caches).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@click.option("--steps", type=click.IntRange(min=1), help="Time steps T of every workload (default: each workload's "
                                                          "own).")
@click.option("--batch", type=click.IntRange(min=1), help="Batch size of every workload (default: each workload's "
                                                          "own).")
@click.option("--threads", type=click.IntRange(min=1), multiple=True,
              help="CPU threads for torch and the CPU scans; repeatable: each workload runs at each count, with its "
                   "bound measured at that count. Default: 1 and 2 on the CPU, torch's own count on CUDA.")
@expected_errors
def bench(workloads, device, repeats, warmup, as_json, steps, batch, threads):
    """Time a full training step on each implementation path of the same network, with ratios and a lower bound."""
    from snnkit_cli.bench import run_benchmarks
    from snnkit_cli.host import keep_freed_memory, set_threads
    from snnkit_core.engine.training import resolve_device

    dev = resolve_device(device)
    counts = list(threads) or ([1, 2] if dev.type == "cpu" else [set_threads(None)])
    keep_freed_memory()
    report = run_benchmarks(
        list(workloads), dev, repeats=repeats, warmup=warmup, steps=steps, batch=batch, threads=counts
    )
    report["meta"]["threads"] = counts[0] if len(counts) == 1 else counts
    meta, results = report["meta"], report["results"]
    if as_json:
        click.echo(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    _print_table(meta, results, counts)


def _print_table(meta: dict, results: list[dict], counts: list[int]) -> None:
    """The bench table (a ``threads`` column when more than one count ran), then the plan's notes."""
    many = len(counts) > 1
    t = Table(title=f"snnkit bench on {meta['device_name']} (torch {meta['torch']}, "
                    f"{', '.join(map(str, counts))} threads)",
              caption="method bound: the bound plus the method's inherent extra work done time-batched (asrc: its "
                      "span mixing); '-' where it is the bound. See docs/performance.md")
    cols = ["workload", "backend", *(["threads"] if many else []), "ran", "implementation", "T x B", "median ms",
            "peak MB", "x vs ref", "bound ms", "fraction of bound", "method bound ms", "of method bound"]
    for col in cols:
        t.add_column(col, justify="right" if col != "workload" else "left")
    notes: set[str] = set()  # implementations that cannot run here, and fallbacks during the run
    for r in results:
        thr = [str(r["threads"])] if many else []
        if "skipped" in r:
            t.add_row(r["workload"], "-", *thr, "-", "-", "", "skipped: " + r["skipped"].split(".")[0], "", "", "",
                      "", "", "")
            continue
        shape = f"{r['steps']} x {r['batch']}"
        for path, p in r["paths"].items():
            if "error" in p:
                t.add_row(r["workload"], path, *thr, "refused", "-", shape, "n/a: " + p["error"][:60], "", "", "", "",
                          "", "")
                continue
            speedup = p.get("speedup_vs_reference")  # None when the reference path was refused (tssl-bp owns its scan)
            notes.update(p["notes"] + p["events"])
            method = ((f"{r['method_bound_ms']:.2f}", f"{p['fraction_of_method_bound']:.3f}") if r["method_extra_ms"]
                      else ("-", "-"))
            t.add_row(r["workload"], path, *thr, p["ran"], p["implementations"], shape, f"{p['median_ms']:.2f}",
                      "-" if p["peak_mb"] is None else f"{p['peak_mb']:.0f}",
                      "-" if speedup is None else f"{speedup:.2f}", f"{r['lower_bound_ms']:.2f}",
                      f"{p['fraction_of_bound']:.3f}", *method)
    console.print(t)
    for note in sorted(notes):
        console.print(f"note: {note}", markup=False, highlight=False)
