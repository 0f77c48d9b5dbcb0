"""The whole reliability sweep (every module of tests/reliability/) as one CI test: every case must end as a clear
error, handled, or n/a (no silent acceptance, traceback, loss, hang or blow-up), within the sweep's time budget."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SWEEP = Path(__file__).resolve().parent / "reliability_sweep.py"
#: seconds the whole sweep may take with --jobs 2 on 2 CPU cores; $SNNKIT_SWEEP_BUDGET_S raises it on a busy machine
BUDGET_S = float(os.environ.get("SNNKIT_SWEEP_BUDGET_S", 300))
#: cases that Ctrl-C a training process: beside other cases (--jobs 2) they twice ended as "hang" in CI-like runs
#: and never alone (docs/reliability.md, "The sweep"); they run alone, one at a time, in their own test below
ALONE = ("Ctrl-C during training", "two processes started together with one --out")


def _sweep(*args: str, timeout: float) -> tuple[subprocess.CompletedProcess, str, list[str]]:
    res = subprocess.run([sys.executable, str(SWEEP), *args], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=timeout)
    summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-2000:]
    print(f"\n{summary}")  # shown with pytest -s, and in the failure below
    bad = [ln for ln in res.stdout.splitlines() if ln and not ln.startswith((" ", "clear error", "handled", "n/a"))
           and "inputs in" not in ln]
    return res, summary, bad


@pytest.mark.slow
def test_the_reliability_sweep_passes_within_its_budget():
    t0 = time.time()
    skips = [a for name in ALONE for a in ("--skip", name)]
    res, summary, bad = _sweep("--jobs", "2", *skips, timeout=max(BUDGET_S * 2, 600))
    took = time.time() - t0
    assert res.returncode == 0, f"{summary}\n" + "\n".join(bad) + res.stderr[-2000:]
    assert took < BUDGET_S, f"the sweep took {took:.0f} s, more than its {BUDGET_S:.0f} s budget: {summary}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ALONE)
def test_the_ctrl_c_cases_pass_alone(name):
    res, summary, bad = _sweep("--jobs", "1", "--only", name, timeout=400)
    assert "1 inputs" in summary and res.returncode == 0, f"{summary}\n" + "\n".join(bad) + res.stderr[-2000:]
