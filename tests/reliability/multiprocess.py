"""Multi-process faults (``snnkit train --devices N``, 2 CPU processes with gloo): a frozen or killed training
process, signals to the launcher, the world size on resume, ``--devices`` above the core count."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from .kit import SMALL, case

CLS = "multi-process"
TWO = ["--devices", "2", "--conn", "self", "--hidden", "8,8"]


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _started(ctx, *extra, epochs=400):
    """A 2-process run once its first checkpoint is on disk: the launcher and the training processes' PIDs."""
    data = ctx.npz()
    p = ctx.popen("train", "--dataset", "arrays", "--data-dir", data, "--epochs", epochs, *SMALL, *TWO, "--out",
                  "run", *extra)
    t0 = time.time()
    while not (ctx.dir / "run" / "checkpoint.pt").exists() and p.poll() is None and time.time() - t0 < 200:
        time.sleep(0.02)
    if not (ctx.dir / "run" / "checkpoint.pt").exists():
        p.kill()
        ctx.outputs.append(p.communicate()[0])
        raise RuntimeError("the run wrote no epoch")
    return p, _children(p.pid)


def _ended(ctx, p, kids, timeout=120) -> tuple[int, str]:
    """Wait for the launcher; what it left behind that it should not have counts as lost."""
    out = p.communicate(timeout=timeout)[0]
    ctx.outputs.append(out)
    run = ctx.dir / "run"
    left = [k for k in kids if _alive(k)]
    for k in left:
        os.kill(k, signal.SIGKILL)
    if left:
        ctx.lost.append(f"training processes {left} outlived the launcher")
    status = json.loads((run / "status.json").read_text())
    if status.get("state") != "interrupted":
        ctx.lost.append(f"status.json says {status.get('state')!r} after the run ended")
    if (run / ".lock").exists() and (run / ".lock").read_text().strip():
        ctx.lost.append("the run's lock still names a process")
    return p.returncode, out


@case(CLS, "--devices far above the CPU core count", "error", ["CPU core", "--force-devices"])
def _(ctx):
    return ctx.train("--devices", 4096, "--out", "run", epochs=1)


@case(CLS, "one rank frozen (SIGSTOP) with --rank-timeout 10", "error",
      ["rank 1 stopped answering", "--devices 2 --resume"], ["Traceback"])
def _(ctx):
    p, kids = _started(ctx, "--rank-timeout", 10)  # it also bounds the start: every process must join by then
    os.kill(kids[1], signal.SIGSTOP)
    t0 = time.time()
    code, out = _ended(ctx, p, kids)
    if time.time() - t0 > 30:
        ctx.lost.append(f"the frozen run took {time.time() - t0:.0f} s to end (timeout 10 s)")
    return code, out


@case(CLS, "one rank killed (SIGKILL)", "error", ["rank 1 was killed by SIGKILL"], ["Traceback"])
def _(ctx):
    p, kids = _started(ctx)
    os.kill(kids[1], signal.SIGKILL)
    code, out = _ended(ctx, p, kids)
    return (code, out) if out.count("Error:") == 1 else (code, out + "\n(more than one error line)")


@case(CLS, "SIGTERM to the launcher", "error", ["snnkit train --devices 2 --resume"], ["Traceback"])
def _(ctx):
    p, kids = _started(ctx)
    p.send_signal(signal.SIGTERM)
    return _ended(ctx, p, kids)


@case(CLS, "Ctrl-C, then the printed hint, then --resume with another --devices", "ok",
      ["resuming with --devices 2"], ["Traceback"])
def _(ctx):
    p, kids = _started(ctx, epochs=60)
    p.send_signal(signal.SIGINT)
    code, out = _ended(ctx, p, kids)
    hint = next((ln for ln in out.splitlines() if "snnkit train --devices 2 --resume" in ln), None)
    if code != 130 or hint is None:
        return 1, out
    code, out = ctx.snnkit("train", "--devices", 1, "--resume", "run", "--quiet")
    if code == 0 or "--change-devices" not in out:
        return 1, out + "\n(another --devices was not refused)"
    code, out = ctx.snnkit("train", "--resume", "run", "--quiet")  # the hint, without --devices: the run's own 2
    manifest = json.loads((ctx.dir / "run" / "manifest.json").read_text())
    status = json.loads((ctx.dir / "run" / "status.json").read_text())
    ok = code == 0 and manifest["world_size"] == 2 and status["state"] == "finished"
    return (0 if ok else 1), out
