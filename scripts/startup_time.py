#!/usr/bin/env python3
"""Start-up time of the light commands (`snnkit --help`, `--version`, `list-plugins`), this tree against another
in the same run: the trees alternate, each command runs ``--repeats`` times per tree, the median wall time of
the whole process (Python start-up included) is reported.

    OMP_NUM_THREADS=1 python scripts/startup_time.py --against /tmp/old-main [--repeats 7]

``--against DIR`` is a source tree (e.g. ``git archive 72b0cd6 | tar -x -C DIR``); its ``snnkit_core``, ``cli``
and ``plugins/*`` are put first on ``PYTHONPATH``. ``list-plugins`` is run once untimed per tree first, so a
tree that caches the listing is measured with its cache warm (the cold first listing is reported apart).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOT = "from snnkit_cli.main import cli; cli(prog_name='snnkit')"
COMMANDS = (["--help"], ["--version"], ["list-plugins"])


def tree_path(tree: Path) -> list[str]:
    return [str(tree), str(tree / "cli")] + [str(p) for p in sorted((tree / "plugins").glob("snnkit-*"))]


def once(args, env) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", BOOT, *args], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"snnkit {' '.join(args)} failed: {res.stderr[-500:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, help="the other source tree")
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    trees = {"this tree": REPO, "other": Path(a.against).resolve()}
    envs = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, tree in trees.items():
            envs[name] = dict(os.environ, OMP_NUM_THREADS="1", SNNKIT_CACHE=str(Path(cache) / name.replace(" ", "-")),
                              PYTHONPATH=os.pathsep.join(tree_path(tree)))
        cold = {name: once(["list-plugins"], env) for name, env in envs.items()}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(a.repeats):
            for args in COMMANDS:
                for name, env in envs.items():
                    times.setdefault((" ".join(args), name), []).append(once(args, env))
    print(f"| command | this tree (median of {a.repeats}) | {a.against} | ratio |")
    print("|---|---|---|---|")
    for args in COMMANDS:
        cmd = " ".join(args)
        new, old = statistics.median(times[(cmd, "this tree")]), statistics.median(times[(cmd, "other")])
        print(f"| `snnkit {cmd}` | {new:.2f} s | {old:.2f} s | {old / new:.1f}x |")
    print(f"| `snnkit list-plugins`, first (cold) listing | {cold['this tree']:.2f} s | {cold['other']:.2f} s | |")


if __name__ == "__main__":
    main()
