#!/usr/bin/env python3
"""Reliability sweep: run a catalogue of bad inputs through the real ``snnkit`` command and classify each.

Every case runs in a fresh temporary folder, as a new user would: it writes its inputs (a small ``arrays``
.npz file, a user's own folder, a broken plugin distribution on ``PYTHONPATH``, a damaged checkpoint ...),
runs ``snnkit`` in subprocesses, and looks at the exit code, the output and the files afterwards. The cases live
in ``tests/reliability/``, one module per class of failure; the outcomes are defined in ``tests/reliability/kit.py``.

Usage::

    OMP_NUM_THREADS=1 python tests/reliability_sweep.py [--markdown] [--only SUBSTRING] [--jobs N] [--tree DIR]

``--tree DIR`` runs the sweep against another source tree (e.g. an export of an older commit): its
``snnkit_core``, ``cli`` and ``plugins/*`` come first on ``PYTHONPATH``. The exit code is 0 only when every case is
a clear error, handled, or n/a.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability  # noqa: E402 - the catalogue, found next to this file
from reliability.kit import CASES, run_case  # noqa: E402

ORDER = ["clear error", "handled", "silent acceptance", "traceback", "loss", "hang", "blow-up", "unclear", "n/a"]


def load_cases() -> None:
    for mod in pkgutil.iter_modules(reliability.__path__):
        if mod.name != "kit":
            importlib.import_module(f"reliability.{mod.name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--only", help="run the cases whose class or name contains this")
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (each case runs its own processes)")
    ap.add_argument("--tree", help="another source tree to test (its packages come first on PYTHONPATH)")
    args = ap.parse_args()
    load_cases()
    pythonpath = []
    if args.tree:
        tree = Path(args.tree).resolve()
        pythonpath = [str(tree), str(tree / "cli")] + [str(p) for p in sorted((tree / "plugins").glob("snnkit-*"))]
    chosen = [c for c in CASES if not args.only or args.only in c.name or args.only == c.cls]
    t_all = time.time()

    def one(c):
        row = run_case(c, pythonpath)
        if not args.markdown:
            print(f"{row[2]:18} {row[0]:11} {row[1]}  ({row[4]:.1f}s)\n{'':18} {row[3]}", flush=True)
        return row

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        rows = list(pool.map(one, chosen))
    counts = Counter(r[2] for r in rows)
    if args.markdown:
        print("| class | input | outcome | what snnkit said (last line) |\n|---|---|---|---|")
        for cls, name, outcome, detail, _ in rows:
            print(f"| {cls} | {name} | **{outcome}** | {detail.replace('|', '/').replace('`', '')} |")
        print()
    print(f"{len(rows)} inputs in {time.time() - t_all:.0f} s: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in ORDER))
    return 0 if all(r[2] in ("clear error", "handled", "n/a") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
