"""Per-step times of this tree against another git revision, measured in the same run (ratio = this / base).

    python scripts/bench_vs.py main --workload tiny --workload scsr-ti46 --rounds 3 --repeats 5

The base revision is exported with ``git archive`` into a temporary folder and imported from there through
PYTHONPATH (its plugins too), so both run on the same interpreter, torch and machine. Each round runs
``snnkit bench --json`` once for the base and once for this tree (the first alternating between rounds), so a
change in machine load hits both; the reported time of a (workload, backend) is the median over rounds of each run's
median step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGINS = ("snnkit-neurons", "snnkit-connectivity", "snnkit-rules", "snnkit-datasets")


def _pythonpath(root: Path) -> str:
    return os.pathsep.join([str(root), str(root / "cli"), *(str(root / "plugins" / p) for p in PLUGINS)])


def _bench(root: Path, args) -> dict:
    cmd = [sys.executable, "-c", "from snnkit_cli.main import cli; cli()", "bench", "--device", "cpu", "--json",
           "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    for w in args.workload:
        cmd += ["--workload", w]
    env = {**os.environ, "PYTHONPATH": _pythonpath(root), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, check=True).stdout
    res = json.loads(out)["results"]
    return {(r["workload"], p): v["median_ms"] for r in res for p, v in r.get("paths", {}).items() if "median_ms" in v}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base", help="git revision to compare against (e.g. main)")
    ap.add_argument("--workload", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    args.workload = args.workload or ["tiny"]
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "base.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), args.base], check=True)
        base = Path(tmp) / "base"
        with tarfile.open(archive) as tf:
            tf.extractall(base, filter="data")
        runs: dict[str, list[dict]] = {"base": [], "this": []}
        for i in range(args.rounds):  # alternate which tree goes first, so an order effect cancels
            for name in (("base", "this") if i % 2 == 0 else ("this", "base")):
                runs[name].append(_bench(base if name == "base" else REPO, args))
    keys = sorted(set().union(*runs["base"]) | set().union(*runs["this"]))
    print(f"{'workload':24} {'backend':10} {'base ms':>10} {'this ms':>10} {'this/base':>9}")
    for key in keys:
        b = [r[key] for r in runs["base"] if key in r]
        t = [r[key] for r in runs["this"] if key in r]
        mb = statistics.median(b) if b else float("nan")
        mt = statistics.median(t) if t else float("nan")
        ratio = f"{mt / mb:9.3f}" if b and t else "      n/a"
        print(f"{key[0]:24} {key[1]:10} {mb:10.2f} {mt:10.2f} {ratio}")


if __name__ == "__main__":
    main()
