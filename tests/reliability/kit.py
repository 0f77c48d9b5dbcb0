"""What every case of the reliability sweep uses: a fresh folder per case (:class:`Ctx`) that runs the real
``snnkit`` command in subprocesses and records what it said and what it lost, the :func:`case` registry, and
:func:`classify`, which turns one case's result into its outcome.

Outcomes: ``clear error`` (expected to fail; exit != 0, the expected words, no traceback), ``handled`` (expected to
succeed, and it did, with the expected result), ``silent acceptance``, ``traceback``, ``loss`` (a file the user had
was changed, or a run's records were damaged or lost), ``hang`` (a command ran past its timeout), ``blow-up`` (a
command ran out of memory under the sweep's address-space cap, or was killed by a signal it did not ask for),
``unclear`` and ``n/a``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--hidden", "8,8,8", "--batch-size", "8", "--quiet"]
MEMORY_CAP = 8 << 30  # bytes of address space per snnkit process: a blow-up fails inside it, not the machine
# `python -c BOOT ARGS` is `snnkit ARGS` under the cap. The cap is set by the process itself, not by a preexec_fn:
# the sweep runs cases in threads, and a preexec_fn runs Python in a forked copy of a multi-threaded process, which
# the subprocess documentation warns can deadlock the child before it starts
# SIGINT is set to Python's default (KeyboardInterrupt), as in a terminal: a sweep started from a background job of
# a non-interactive shell (`cmd &`) passes SIGINT on as ignored, and its Ctrl-C cases would then see no Ctrl-C
BOOT = (f"import resource, signal; resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP})); "
        "signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from snnkit_cli.main import cli; cli(prog_name='snnkit')")
TIMEOUT = 240.0  # seconds one command may take before the case counts as a hang
OUT_OF_MEMORY = ("MemoryError", "can't allocate memory", "std::bad_alloc", "Cannot allocate memory")


class Hang(Exception):
    """A command ran past its timeout (it was killed)."""


@dataclass
class Ctx:
    dir: Path
    pythonpath: list[str]
    outputs: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)  # unasked deaths by a signal
    procs: list[subprocess.Popen] = field(default_factory=list)  # started in the background

    def env(self, **extra) -> dict:
        env = dict(os.environ, OMP_NUM_THREADS="1", SNNKIT_CACHE=str(self.dir / ".cache"))
        env.pop("SNNKIT_FAULT_AT", None)
        paths = (
            [str(self.dir / "plug")] + self.pythonpath + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.update(extra)
        return env

    def snnkit(self, *args, env: dict | None = None, timeout: float = TIMEOUT) -> tuple[int, str]:
        try:
            res = subprocess.run([sys.executable, "-c", BOOT, *map(str, args)], cwd=self.dir,
                                 env=self.env(**(env or {})), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise Hang(f"snnkit {' '.join(map(str, args))[:80]} ran past {timeout:.0f} s") from exc
        out = res.stdout + res.stderr
        self.outputs.append(out)
        self.signals += [-res.returncode] if res.returncode < 0 else []
        return res.returncode, out

    def popen(self, *args, env: dict | None = None) -> subprocess.Popen:
        self.procs.append(subprocess.Popen([sys.executable, "-c", BOOT, *map(str, args)], cwd=self.dir,
                                env=self.env(**(env or {})), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True))
        return self.procs[-1]

    def stop_background(self) -> list[str]:
        """Kill what a case left running (a case must not outlive its folder); the commands it killed."""
        left = [p for p in self.procs if p.poll() is None]
        for p in left:
            p.kill()
            p.communicate()
        return [" ".join(map(str, p.args[3:6])) for p in left]

    def npz(self, name="d.npz", **over) -> Path:
        rng = np.random.default_rng(0)
        y = np.arange(16) % 2
        x = rng.random((16, 10, 4), dtype=np.float32) * 0.2
        x[y == 1, :, :2] += 1.0
        d = dict(x_train=x, y_train=y, x_test=x[:8].copy(), y_test=y[:8].copy())
        d.update(over)
        path = self.dir / name
        np.savez(path, **{k: v for k, v in d.items() if v is not None})
        return path

    def train(self, *args, epochs=2, env=None, data: Path | None = None) -> tuple[int, str]:
        data = data or self.npz()
        return self.snnkit(
            "train", "--dataset", "arrays", "--data-dir", data, "--epochs", epochs, *SMALL, *args, env=env
        )

    def plugin(self, dist: str, source: str) -> None:
        root = self.dir / "plug"
        root.mkdir(exist_ok=True)
        module = dist.replace("-", "_")
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info = root / f"{module}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
        (info / "entry_points.txt").write_text(f"[snnkit]\n{dist} = {module}\n")


def metrics(run: Path) -> list[dict]:
    rows = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        r.pop("seconds", None)
        rows.append(r)
    return rows


def wait_for(path: Path, timeout: float = 120) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and path.stat().st_size > 0:
            return True
        time.sleep(0.1)
    return False


@dataclass
class Case:
    cls: str
    name: str
    expect: str  # "error" or "ok"
    run: Callable[[Ctx], tuple[int, str] | bool]
    needles: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()


CASES: list[Case] = []


def case(cls, name, expect, needles=(), forbidden=()):
    def deco(fn):
        CASES.append(Case(cls, name, expect, fn, tuple(needles), tuple(forbidden)))
        return fn

    return deco



def classify(c: Case, ctx: Ctx, result) -> str:
    text = "\n".join(ctx.outputs)
    if result == "n/a":
        return "n/a"
    if result == "hang":
        return "hang"
    if any(n in text for n in OUT_OF_MEMORY) or any(s not in (2, 15) for s in ctx.signals):
        return "blow-up"  # SIGINT / SIGTERM deaths are the ones a case asks for
    if "Traceback (most recent call last)" in text:
        return "traceback"
    ran = (result if isinstance(result, bool) else result[0] == 0)
    if c.expect == "error" and ran and all(x.startswith("written:") for x in ctx.lost):
        return "silent acceptance"  # it trained: the run folder is its output, not a loss
    if ctx.lost:
        return "loss"
    if isinstance(result, bool):
        code, out = (0 if result else 1), text
    else:
        code, out = result
    words_ok = all(n in out for n in c.needles) and not any(f in out for f in c.forbidden)
    if c.expect == "error":
        if code == 0:
            return "silent acceptance"
        return "clear error" if words_ok else "unclear"
    if isinstance(result, bool):
        return "handled" if result else "unclear"
    return "handled" if code == 0 and words_ok else "unclear"


def run_case(c: Case, pythonpath: list[str], root: str | None = None) -> tuple[str, str, str, str, float]:
    """Run one case in a fresh temporary folder: (class, name, outcome, what snnkit said last or what was lost,
    seconds)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="snnkit-sweep-", dir=root) as d:
        ctx = Ctx(Path(d), pythonpath)
        t0 = time.time()
        try:
            result = c.run(ctx)
        except (Hang, subprocess.TimeoutExpired) as exc:
            ctx.outputs.append(f"(sweep: {exc})")
            result = "hang"
        except Exception as exc:  # noqa: BLE001 - a case whose setup fails is reported, not fatal
            ctx.outputs.append(f"(sweep: the case itself failed: {type(exc).__name__}: {exc})")
            result = False
        finally:
            if left := ctx.stop_background():
                ctx.outputs.append(f"(sweep: still running when the case ended, killed: {left})")
        outcome = classify(c, ctx, result)
        said = [result[1]] if isinstance(result, tuple) else ctx.outputs
        last = next((ln for o in reversed(said) for ln in reversed(o.strip().splitlines()) if ln.strip()), "")
        return c.cls, c.name, outcome, ("; ".join(ctx.lost) or last)[:160], time.time() - t0
