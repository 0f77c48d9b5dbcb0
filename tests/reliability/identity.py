"""Run identity (a folder is a run by the run id snnkit writes first; a run holding finished epochs is never
overwritten, and every message says what it holds) and the final-epoch window (a kill after the last checkpoint
landed is repaired by ``--resume``)."""

from __future__ import annotations

import json
from pathlib import Path

from .kit import case, metrics

IDENTITY, WINDOW = "run identity", "final window"
NOT_FIRST_EPOCH = ("stopped before its first epoch ended",)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _unchanged(ctx, folder: Path, before: dict[str, bytes]) -> None:
    after = _snapshot(folder)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        ctx.lost.append(f"{folder.name}: changed {changed}")


def _finished(ctx, *delete: str) -> Path:
    """A finished 2-epoch run with a validation split (so best.pt exists), ``delete`` removed from it."""
    code, out = ctx.train("--out", "run", "--val-fraction", "0.25")
    assert code == 0, out
    for name in delete:
        (ctx.dir / "run" / name).unlink()
    return ctx.dir / "run"


@case(IDENTITY, "--out is another tool's folder whose status.json has a state key", "error", ["not a snnkit run"])
def _(ctx):
    mine = ctx.dir / "mine"
    mine.mkdir()
    (mine / "status.json").write_text('{"state": "done", "tool": "mine"}\n')
    (mine / "config.toml").write_text("lr = 0.1\n")
    (mine / "metrics.csv").write_text("step,loss\n1,0.5\n")
    before = _snapshot(mine)
    code, out = ctx.train("--out", mine)
    _unchanged(ctx, mine, before)
    return code, out


@case(IDENTITY, "--out is a finished run whose checkpoint.pt was deleted", "error",
      ["2 finished epoch(s)", "will not overwrite", "another --out"])
def _(ctx):
    run = _finished(ctx, "checkpoint.pt")
    before = _snapshot(run)
    code, out = ctx.train("--out", run)
    _unchanged(ctx, run, before)
    return code, out


@case(IDENTITY, "--resume of a finished run whose checkpoint.pt was deleted", "error",
      ["2 finished epoch(s)", "best.pt remains", "--out NEW_DIR"], NOT_FIRST_EPOCH)
def _(ctx):
    run = _finished(ctx, "checkpoint.pt")
    before = _snapshot(run)
    code, out = ctx.snnkit("train", "--resume", run)
    _unchanged(ctx, run, before)
    return code, out


@case(IDENTITY, "eval of a finished run without any checkpoint", "error", ["2 finished epoch(s)", "--out NEW_DIR"],
      NOT_FIRST_EPOCH)
def _(ctx):
    run = _finished(ctx, "checkpoint.pt", "best.pt")
    before = _snapshot(run)
    code, out = ctx.snnkit("eval", run)
    _unchanged(ctx, run, before)
    return code, out


@case(IDENTITY, "--init-from an empty folder", "error", ["is empty", "snnkit train"], NOT_FIRST_EPOCH)
def _(ctx):
    (ctx.dir / "empty").mkdir()
    return ctx.train("--init-from", ctx.dir / "empty", "--out", "new")


@case(IDENTITY, "eval and --resume of the user's own folder", "error", ["not a snnkit run"], NOT_FIRST_EPOCH)
def _(ctx):
    mine = ctx.dir / "mine"
    mine.mkdir()
    (mine / "config.toml").write_text('[train]\ndataset = "arrays"\n')
    (mine / "notes.txt").write_text("mine\n")
    before = _snapshot(mine)
    code, out = ctx.snnkit("eval", mine)
    code2, out2 = ctx.snnkit("train", "--resume", mine)
    _unchanged(ctx, mine, before)
    if (mine / ".lock").exists():
        ctx.lost.append("mine: a .lock was left in the user's folder")
    return (code if code2 else 0), out + out2


@case(IDENTITY, "--resume of a run written before run ids (0.2.0 layout)", "ok")
def _(ctx):
    code, out = ctx.train("--out", "run", env={"SNNKIT_FAULT_AT": "checkpoint:1"})
    run = ctx.dir / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.pop("run_id", None)
    (run / "manifest.json").write_text(json.dumps(manifest))
    code, out = ctx.snnkit("train", "--resume", run)
    return code == 0 and [r["epoch"] for r in metrics(run)] == [1, 2]


def _window(ctx, point: str) -> tuple[int, str]:
    """Kill a 2-epoch run at ``point`` (in its last epoch), then --resume: every epoch in metrics.jsonl once, and
    summary.json and status.json repaired and named (tests/test_run_identity.py compares every fault point with an
    uninterrupted run)."""
    code, out = ctx.train("--out", "run", env={"SNNKIT_FAULT_AT": point})
    if code == 0:
        return 1, f"not killed at {point}:\n{out}"
    run = ctx.dir / "run"
    code, out = ctx.snnkit("train", "--resume", run)
    records, summary = metrics(run), json.loads((run / "summary.json").read_text())
    if [r["epoch"] for r in records] != [1, 2]:
        ctx.lost.append(f"metrics.jsonl after --resume: epochs {[r['epoch'] for r in records]}")
    if summary["epochs_done"] != 2 or summary["final_test_accuracy"] != records[-1]["test_accuracy"]:
        ctx.lost.append(f"summary.json after --resume describes another epoch: {summary}")
    if json.loads((run / "status.json").read_text())["state"] != "finished":
        ctx.lost.append("status.json does not say finished after --resume")
    return code, out


@case(WINDOW, "killed just after the last checkpoint landed, then --resume", "ok",
      ["is complete", "Repaired", "summary.json", "status.json"])
def _(ctx):
    return _window(ctx, "checkpoint:2")


@case(WINDOW, "killed writing the final status.json, then --resume", "ok", ["is complete", "Repaired status.json"])
def _(ctx):
    return _window(ctx, "status-tmp:2")
