"""Run identity and the final-epoch window: what marks a folder as a snnkit run, that a run holding finished
epochs is never overwritten (and the messages say what it holds), and crash consistency at every write of a run,
the last epoch's included (docs/reliability.md, "Run identity" and "The final-epoch window")."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from snnkit_core.contract import atomic
from snnkit_core.engine import rundir
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.training import train


def _cfg(**kw):
    base = dict(neuron="lif", conn="ff", rules=("bptt",), dataset="tiny", hidden=(4, 4), epochs=3, batch_size=32,
                device="cpu", val_fraction=0.25)
    return TrainConfig(**{**base, **kw})


TINY = ("--hidden", "4,4", "--conn", "ff")


def _cli(*args):
    from snnkit_cli.main import cli

    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit)), \
        res.output
    return res


REAL_WRITE = rundir.atomic_write


class Killed(BaseException):
    """A simulated kill: raised at a fault point; nothing is written after it, as after a real kill."""


def _faults(monkeypatch, kill_at: tuple[str, int] | None = None, error: Exception | None = None) -> list[str]:
    """Route every fault point of a run through this test: record the points reached, in order, and with
    ``kill_at=(point, n)`` raise :class:`Killed` the n-th time ``point`` is reached and refuse every later write
    (or raise ``error`` there once, an I/O error the process lives through)."""
    seen: list[str] = []
    dead = []

    def fault_point(name, path=None):
        seen.append(name)
        if kill_at and (name, seen.count(name)) == kill_at:
            if error is not None:
                raise error
            dead.append(name)
            raise Killed(name)

    def atomic_write(*a, **k):
        if dead:
            raise Killed("written after the kill")
        return REAL_WRITE(*a, **k)

    monkeypatch.setattr(atomic, "fault_point", fault_point)
    monkeypatch.setattr(rundir, "atomic_write", atomic_write)
    return seen


def _state(run: Path) -> dict:
    """Everything a run's records say, minus the wall-clock parts (seconds, pid, updated)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    with open(run / "metrics.csv", newline="") as f:
        table = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
    status = json.loads((run / "status.json").read_text())
    weights = {name: torch.load(run / name, weights_only=True)["model"] for name in ("checkpoint.pt", "best.pt")}
    return {"metrics": [{k: v for k, v in r.items() if k != "seconds"} for r in rows], "csv": table,
            "summary": json.loads((run / "summary.json").read_text()),
            "status": {k: status.get(k) for k in ("state", "message", "warnings", "stopped_early")},
            "weights": {n: {k: v.tolist() for k, v in w.items()} for n, w in weights.items()}}


def test_a_fault_at_every_write_of_a_run_then_resume_gives_the_uninterrupted_run(fake, tmp_path, monkeypatch):
    """Every fault point of a 3-epoch run, at each of its occurrences (before and after each file lands, the last
    epoch's included): the kill, then `snnkit train --resume` (or, before the first checkpoint, the same --out
    again) ends with the uninterrupted run's weights, metrics, summary and status."""
    torch.set_num_threads(1)
    seen = _faults(monkeypatch)
    list(train(_cfg(), tmp_path / "ref"))
    ref = _state(tmp_path / "ref")
    points = sorted({(name, n) for name, count in Counter(seen).items() for n in range(1, count + 1)})
    names = {p for p, _ in points}
    assert {"manifest", "config", "metrics", "csv", "summary", "status", "checkpoint", "best"} <= names, names
    assert {f"{p}-tmp" for p in ("checkpoint", "status", "summary")} <= names, names
    assert len(points) >= 40, points
    for point in points:
        run = tmp_path / f"{point[0]}-{point[1]}"
        _faults(monkeypatch, kill_at=point)
        with pytest.raises(Killed):
            list(train(_cfg(), run))
        _faults(monkeypatch)
        if (run / "checkpoint.pt").exists():
            res = _cli("train", "--resume", run, "--quiet")
        else:  # killed before its first epoch ended: the same --out starts over
            res = _cli("train", "--config", run / "config.toml", "--out", run, "--quiet") \
                if (run / "config.toml").exists() else None
            if res is None:
                list(train(_cfg(), run))
        assert res is None or res.exit_code == 0, (point, res.output)
        assert not [p.name for p in run.iterdir() if ".tmp" in p.name], point
        assert _state(run) == ref, point


def test_resume_of_a_run_killed_after_its_last_checkpoint_repairs_and_says_so(fake, tmp_path, monkeypatch):
    """The final-epoch window: killed just after the last checkpoint landed, the run's summary and metrics describe
    the epoch before and status.json says running; --resume says complete, rebuilds them and names them."""
    run = tmp_path / "r"
    _faults(monkeypatch, kill_at=("checkpoint", 3))
    with pytest.raises(Killed):
        list(train(_cfg(), run))
    _faults(monkeypatch)
    assert json.loads((run / "summary.json").read_text())["epochs_done"] == 2
    assert json.loads((run / "status.json").read_text())["state"] == "running"  # its process is gone: "killed"
    res = _cli("train", "--resume", run)
    assert res.exit_code == 0 and "is complete" in res.output, res.output
    for name in ("metrics.jsonl", "metrics.csv", "summary.json", "status.json"):
        assert name in res.output, res.output
    assert json.loads((run / "summary.json").read_text())["epochs_done"] == 3
    assert rundir.RunDir(run).status(3)["state"] == "finished"
    again = _cli("train", "--resume", run)  # idempotent: nothing left to repair
    assert again.exit_code == 0 and "Repaired" not in again.output, again.output


def test_the_run_id_is_written_first_and_marks_the_folder(fake, tmp_path, monkeypatch):
    written = []
    real = rundir.atomic_write
    monkeypatch.setattr(rundir, "atomic_write", lambda path, *a, **k: written.append(Path(path).name) or real(path, *a,
                                                                                                           **k))
    list(train(_cfg(epochs=1), tmp_path / "r"))
    assert written[0] == "manifest.json", written
    assert len(json.loads((tmp_path / "r" / "manifest.json").read_text())["run_id"]) == 32
    assert rundir.is_run(tmp_path / "r")


def test_another_tools_folder_with_a_state_key_is_not_a_run(fake, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    files = {"status.json": '{"state": "done"}\n', "config.toml": "x = 1\n", "metrics.csv": "a,b\n1,2\n"}
    for name, text in files.items():
        (mine / name).write_text(text)
    assert not rundir.is_run(mine)
    res = _cli("train", "--dataset", "tiny", *TINY, "--epochs", "1", "--out", mine)
    assert res.exit_code == 1 and "not a snnkit run" in res.output, res.output
    assert {p.name: p.read_text() for p in mine.iterdir()} == files  # nothing touched, no lock left behind
    from snnkit_cli.runs import find_runs

    list(train(_cfg(epochs=1), tmp_path / "run"))
    assert find_runs(tmp_path) == [tmp_path / "run"] and find_runs(mine) == []  # `snnkit runs` lists runs only


def test_a_run_from_before_run_ids_still_resumes(fake, tmp_path):
    """0.2.0 wrote no run id: its layout (manifest.json with snnkit's and torch's versions beside config.toml)
    still marks the folder as a run, so it opens, resumes and is refused as a new --out."""
    run = tmp_path / "old"
    gen = train(_cfg(), run)
    next(gen)
    gen.close()
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["run_id"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert rundir.is_run(run)
    res = _cli("train", "--dataset", "tiny", *TINY, "--epochs", "1", "--out", run)
    assert res.exit_code == 1 and "--resume" in res.output and "1 finished epoch" in res.output, res.output
    res = _cli("train", "--resume", run, "--quiet")
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_a_finished_run_whose_checkpoints_were_deleted_is_kept_and_every_message_says_what_it_holds(fake, tmp_path):
    run = tmp_path / "r"
    list(train(_cfg(), run))
    (run / "checkpoint.pt").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    res = _cli("train", "--dataset", "tiny", *TINY, "--epochs", "1", "--out", run)
    assert res.exit_code == 1 and "3 finished epoch(s)" in res.output and "will not overwrite" in res.output, \
        res.output
    for args in (["train", "--resume", run], ["train", "--dataset", "tiny", *TINY, "--init-from", run,
                                              "--out", tmp_path / "new"]):
        res = _cli(*args)
        assert res.exit_code == 1 and "3 finished epoch(s)" in res.output and "first epoch" not in res.output, \
            res.output
        assert "best.pt remains" in res.output and "--out NEW_DIR" in res.output, res.output
    (run / "best.pt").unlink()
    res = _cli("eval", run)
    assert res.exit_code == 1 and "3 finished epoch(s)" in res.output and "first epoch" not in res.output, res.output
    (run / "metrics.jsonl").unlink()
    (run / "summary.json").unlink()
    res = _cli("train", "--dataset", "tiny", *TINY, "--epochs", "1", "--out", run)
    assert res.exit_code == 1 and "a finished run" in res.output, res.output  # status.json still says finished
    del before["best.pt"], before["metrics.jsonl"], before["summary.json"]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"}


def test_init_from_and_eval_of_folders_that_are_not_runs_say_so(fake, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _cli("train", "--dataset", "tiny", *TINY, "--init-from", empty, "--out", tmp_path / "n")
    assert res.exit_code == 1 and "is empty" in res.output and "first epoch" not in res.output, res.output
    user = tmp_path / "user"
    user.mkdir()
    (user / "config.toml").write_text('[train]\ndataset = "tiny"\nhidden = [4, 4]\n')
    (user / "notes.txt").write_text("mine\n")
    for args in (["eval", user], ["train", "--resume", user]):
        res = _cli(*args)
        said = "not a snnkit run" in res.output or "no run directory" in res.output
        assert res.exit_code == 1 and said and "first epoch" not in res.output, res.output
    assert sorted(p.name for p in user.iterdir() if p.name != ".lock") == ["config.toml", "notes.txt"]


def test_an_io_error_after_the_last_checkpoint_is_repaired_by_resume(fake, tmp_path, monkeypatch):
    """A full disk while the last epoch's summary.json is written: the run stops (status.json "interrupted")
    with its last checkpoint in place; --resume says complete and repairs summary.json and status.json."""
    import errno

    list(train(_cfg(), tmp_path / "ref"))
    run = tmp_path / "r"
    seen = _faults(monkeypatch, kill_at=("summary-tmp", 4), error=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError, match="No space"):
        list(train(_cfg(), run))
    assert seen.count("checkpoint") == 3
    _faults(monkeypatch)
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"
    res = _cli("train", "--resume", run)
    assert res.exit_code == 0 and "Repaired summary.json, status.json" in res.output, res.output
    assert _state(run) == _state(tmp_path / "ref")


def test_a_run_killed_as_patience_stopped_it_is_not_trained_further_by_resume(fake, tmp_path, monkeypatch):
    """--patience stopped the run, and it was killed writing that final status.json: --resume must end it as the
    uninterrupted run ended (stopped early, the same epochs), not train on."""
    cfg = _cfg(epochs=8, patience=2)
    seen = _faults(monkeypatch)
    list(train(cfg, tmp_path / "ref"))
    ref = _state(tmp_path / "ref")
    assert ref["status"]["stopped_early"] and len(ref["metrics"]) < 8, ref["status"]  # the case this test needs
    _faults(monkeypatch, kill_at=("status-tmp", seen.count("status")))
    with pytest.raises(Killed):
        list(train(cfg, tmp_path / "r"))
    _faults(monkeypatch)
    res = _cli("train", "--resume", tmp_path / "r", "--quiet")
    assert res.exit_code == 0 and "stopped early" in res.output, res.output
    assert _state(tmp_path / "r") == ref
