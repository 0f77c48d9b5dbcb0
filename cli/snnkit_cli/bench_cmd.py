"""``snnkit bench``: parse -> snnkit_cli.bench.run_benchmarks -> render."""

from __future__ import annotations

import json
import os

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
@click.option("--rates", "rate_runs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Instead of timing: print the input spike rate of each layer of this trained run (RUN_DIR; "
                   "repeatable), on the first 4 batches of its test split.")
@click.option("--products", is_flag=True, help="Instead of timing steps: time the event-driven feedforward product "
                                               "against the dense one at spike rates 1-50 %% at the W2/W3 layer "
                                               "shapes (CPU; --repeats rounds).")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Above 1: time only the torch path of the chosen workloads, in this many interleaved rounds (each "
                   "round every workload's step, then its bound), and report medians over rounds, each workload's "
                   "fraction of the bound per round and its speed against the first workload paired by round.")
@expected_errors
def bench(workloads, device, repeats, warmup, as_json, steps, batch, threads, rate_runs, products, rounds):
    """Time a full training step on each implementation path of the same network, with ratios and a lower bound."""
    if rate_runs or products:
        from snnkit_cli.host import set_threads

        set_threads(threads[0] if threads else None)
        _sparsity(rate_runs, products, repeats, as_json)
        return
    from snnkit_cli.bench import chosen, run_benchmarks
    from snnkit_cli.host import keep_freed_memory, set_threads
    from snnkit_cli.resources import check_bench_memory, cores
    from snnkit_core.engine.training import resolve_device

    dev = resolve_device(device)
    counts = list(threads) or ([1, 2][:cores()] if dev.type == "cpu" else [set_threads(None)])  # 1 core: 1
    check_bench_memory(chosen(workloads, dev, steps, batch), str(dev))
    keep_freed_memory()
    if rounds > 1:
        _interleaved(workloads, dev, counts, rounds, repeats, warmup, steps, batch, as_json)
        return
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


def _sparsity(rate_runs, products: bool, rounds: int, as_json: bool) -> None:
    """``--rates`` / ``--products``: the measured input rates of trained runs, the product sweep."""
    import torch

    from snnkit_cli.bench_sparse import input_rates, product_sweep

    rates = [input_rates(r) for r in rate_runs]
    sweep = product_sweep(rounds=min(rounds, 5)) if products else []
    if as_json:
        click.echo(json.dumps({"rates": rates, "products": sweep, "threads": torch.get_num_threads()}, indent=2))
        return
    for rec in rates:
        t = Table(title=f"{rec['run']}: input spike rates ({rec['split']}, {rec['batches']} batches, epoch "
                        f"{rec['epoch']}, {rec['weights']} weights)")
        for col in ("layer", "input rate", "binary"):
            t.add_column(col)
        for layer in rec["layers"]:
            t.add_row(layer["layer"], f"{layer['input_rate']:.4f}", "yes" if layer["binary"] else "no")
        console.print(t)
    if sweep:
        t = Table(title=f"event-driven vs dense product, {torch.get_num_threads()} threads (ms, medians; x = dense / "
                        f"event-driven, above 1: event-driven faster)")
        for col in ("shape", "rate", "dense fwd", "event fwd", "x fwd", "dense wgrad", "event wgrad", "x wgrad",
                    "x fwd+wgrad (range)"):
            t.add_column(col, justify="right")
        for r in sweep:
            lo, hi = r["x_both_range"]
            t.add_row(r["shape"], f"{r['rate']:.2f}", *(f"{1e3 * r[k]:.2f}" for k in ("dense_fwd", "event_fwd")),
                      f"{r['x_fwd']:.2f}", *(f"{1e3 * r[k]:.2f}" for k in ("dense_wgrad", "event_wgrad")),
                      f"{r['x_wgrad']:.2f}", f"{r['x_both']:.2f} ({lo:.2f}-{hi:.2f})")
        console.print(t)


def _load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _interleaved(groups, dev, counts, rounds, repeats, warmup, steps, batch, as_json) -> None:
    """``--rounds N``: the chosen workloads' torch path in interleaved rounds, per thread count."""
    from snnkit_cli.bench import chosen
    from snnkit_cli.bench_sparse import interleaved
    from snnkit_cli.host import set_threads

    ws = chosen(groups or ["tiny"], dev, steps, batch)
    res = []
    load = [_load_average()]  # other work on the machine slows a step more than its bound: say how much there was
    for n in counts:
        set_threads(n)
        res += interleaved(ws, dev, rounds=rounds, repeats=repeats, warmup=warmup)
    load.append(_load_average())
    if as_json:
        click.echo(json.dumps({"interleaved": res, "load_average": load}, indent=2))
        return
    seen = "n/a" if None in load else f"{load[0]:.2f} before, {load[1]:.2f} after"
    t = Table(title=f"torch path, {rounds} interleaved rounds (medians; x first: the first row's step / this one's, "
                    f"paired by round)", caption=f"1-minute load average: {seen}; {os.cpu_count()} CPUs")
    for col in ("workload", "threads", "median ms", "bound ms", "fraction of bound (range)", "x first (range)",
                "input rates"):
        t.add_column(col, justify="left" if col == "workload" else "right")
    for r in res:
        (flo, fhi), (xlo, xhi) = r["fraction_range"], r["x_first_range"]
        t.add_row(r["workload"], str(r["threads"]), f"{r['median_ms']:.1f}", f"{r['bound_ms']:.1f}",
                  f"{r['fraction_of_bound']:.3f} ({flo:.2f}-{fhi:.2f})", f"{r['x_first']:.2f} ({xlo:.2f}-{xhi:.2f})",
                  " ".join(f"{x:.3f}" for x in r["input_rates"]))
    console.print(t)
