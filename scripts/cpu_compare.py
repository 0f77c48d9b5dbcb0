"""Time the CPU training step of two snnkit trees in one run, interleaved, as ratios (docs/performance.md).

    python scripts/cpu_compare.py --old /tmp/prev --threads 1 --threads 2 --rounds 3 --out cmp.json

``--old`` is another checkout (e.g. ``git archive 72b0cd6 | tar -x -C /tmp/prev``). Each measurement is a
separate process (``--one``) importing either this tree or the old one, so the two never share imported
code; the rounds alternate old/new per workload and thread count, and the medians over rounds are reported
with ``uptime``'s load before each; for ``asrc`` also the fraction of the method bound (the bound plus
``bench.span_mixing_time``; a tree without it gets the new tree's median span term). Shapes: the issue's
(scsr-ti46 T 100 B 50: bptt and tssl-bp; src-psmnist T 784 B 32: src and asrc; src-ssc T 100 B 32: src).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SHAPES = {"scsr-ti46": (None, None), "src-psmnist": (784, 32), "src-ssc": (100, 32)}
# every CPU row of the issue
ONLY = {"scsr-ti46/bptt", "scsr-ti46/tssl-bp", "src-psmnist/src", "src-psmnist/asrc", "src-ssc/src"}


def one(group: str, threads: int, repeats: int, warmup: int, paths: list[str]) -> dict:
    import attrs
    import torch

    torch.set_num_threads(threads)
    try:  # a tree from before the v3 layout (the editable install would otherwise lend it this tree's CLI)
        from snnkit_core import bench
        from snnkit_core.host import keep_freed_memory
    except ImportError:
        from snnkit_cli import bench
        from snnkit_cli.host import keep_freed_memory
    keep_freed_memory()  # what `snnkit bench/train` do

    steps, batch = SHAPES[group]
    bw = bench.copy_bandwidth(torch.device("cpu"))
    out = []
    for w in bench.WORKLOADS[group]:
        if w.name not in ONLY:
            continue
        w = attrs.evolve(w, steps=steps or w.steps, batch=batch or w.batch)
        r = bench.bench_workload(w, torch.device("cpu"), paths=tuple(paths), warmup=warmup, repeats=repeats)
        r["lower_bound_ms"] = 1e3 * bench.lower_bound(w, torch.device("cpu"), bw)
        if hasattr(bench, "span_mixing_time"):  # trees before the method bound lack it: the new tree's is used
            r["method_extra_ms"] = 1e3 * bench.span_mixing_time(w, torch.device("cpu"))
        out.append(r)
    return {"results": out, "snnkit_core": bench.__file__}


def tree_env(root: Path) -> dict:
    env = dict(os.environ)
    parts = [root, root / "cli", *sorted((root / "plugins").glob("snnkit-*"))]
    env["PYTHONPATH"] = os.pathsep.join(map(str, parts))
    env["OMP_NUM_THREADS"] = "1"
    return env


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", type=Path, help="the other tree (required unless --one)")
    ap.add_argument("--threads", type=int, action="append")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--group", action="append")
    ap.add_argument("--reference", action="store_true", help="also time the reference path (slow)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--one", nargs=3, metavar=("GROUP", "THREADS", "PATHS"))
    return ap.parse_args()


def run_tree(a, label: str, root: Path, group: str, th: int, paths: str, rnd: int) -> list[dict]:
    """One ``--one`` child on tree ``root``: a row per (workload, path)."""
    load = os.getloadavg()[0]
    p = subprocess.run([sys.executable, __file__, "--one", group, str(th), paths, "--repeats", str(a.repeats),
                        "--warmup", str(a.warmup)], env=tree_env(root), capture_output=True, text=True)
    if p.returncode:
        sys.exit(p.stderr)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert str(root) in res["snnkit_core"], res["snnkit_core"]
    rows = []
    for r in res["results"]:
        for path, v in r["paths"].items():
            rows.append(dict(tree=label, threads=th, workload=r["workload"], T=r.get("steps"), path=path,
                             ms=v["median_ms"], bound_ms=r["lower_bound_ms"], extra_ms=r.get("method_extra_ms"),
                             load=load, round=rnd))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def measure(a) -> list[dict]:
    """Every (threads, group, round), alternating which tree runs first."""
    rows = []
    paths = "reference,torch" if a.reference else "torch"
    for th in a.threads or [1]:
        for group in a.group or list(SHAPES):
            for rnd in range(a.rounds):
                for label, root in (("old", a.old), ("new", HERE)) if rnd % 2 == 0 else (("new", HERE), ("old", a.old)):
                    rows += run_tree(a, label, root, group, th, paths, rnd)
    return rows


def report_line(th, wl, path, d: dict) -> str | None:
    """One table row: medians, old/new paired by round, fractions of the bound."""
    med = {k: statistics.median(r["ms"] for r in v) for k, v in d.items()}
    frac = {k: [r["bound_ms"] / r["ms"] for r in v] for k, v in d.items()}  # bound of the same process
    bound = statistics.median(r["bound_ms"] for v in d.values() for r in v)
    loads = [r["load"] for v in d.values() for r in v]
    if "old" not in med or "new" not in med:
        return None
    by_round = {(r["tree"], r["round"]): r["ms"] for v in d.values() for r in v}
    paired = [by_round[("old", k)] / by_round[("new", k)]
              for (t, k) in by_round if t == "new" and ("old", k) in by_round]
    extras = [r["extra_ms"] for r in d["new"] if r.get("extra_ms") is not None]
    method = "-"
    if extras and statistics.median(extras) > 0:  # old trees have no span term: the new tree's median is added
        ex = statistics.median(extras)
        mf = {k: [(r["bound_ms"] + (r["extra_ms"] if r.get("extra_ms") is not None else ex)) / r["ms"] for r in v]
              for k, v in d.items()}
        method = (f"{ex:.1f}, {statistics.median(mf['old']):.2f}, {statistics.median(mf['new']):.2f} "
                  f"({min(mf['new']):.2f}-{max(mf['new']):.2f})")
    return (f"{th} {wl} {path} | {med['old']:.1f} | {med['new']:.1f} | {statistics.median(paired):.2f} "
            f"({min(paired):.2f}-{max(paired):.2f}) | {bound:.1f} | {statistics.median(frac['old']):.2f} | "
            f"{statistics.median(frac['new']):.2f} ({min(frac['new']):.2f}-{max(frac['new']):.2f}) | {method} | "
            f"{min(loads):.1f}-{max(loads):.1f}")


def main():
    a = parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], int(a.one[1]), a.repeats, a.warmup, a.one[2].split(","))))
        return
    rows = measure(a)
    summary = {}
    for row in rows:
        key = (row["threads"], row["workload"], row["path"])
        summary.setdefault(key, {}).setdefault(row["tree"], []).append(row)
    print("\nthreads workload path | old ms | new ms | old/new (paired by round: median, range) | bound ms | "
          "fraction old | fraction new (range) | method bound: extra ms, fraction old, new (range) | load")
    for (th, wl, path), d in sorted(summary.items()):
        line = report_line(th, wl, path, d)
        if line is not None:
            print(line)
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
