"""Multi-process faults (``snnkit train --devices N``): a frozen or killed rank, signals to the launcher, the
resume hint and the world size on resume, ``--devices`` above the core count.

The end-to-end tests run 2 CPU processes (gloo) on a small arrays file; the others call the launcher's pieces
in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from snnkit_cli import launch
from snnkit_core.engine.rundir import RunDir

N_EPOCHS = 8
TIMEOUT_S = 10  # it also bounds the start: a loaded machine staggers the processes by seconds


def _data(path: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(400) % 2
    x = rng.random((400, 20, 8), dtype=np.float32) * 0.2
    x[y == 1, :, :4] += 1.0
    np.savez(path, x_train=x, y_train=y, x_test=x[:64].copy(), y_test=y[:64].copy())
    return path


def _argv(data: Path, run: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "snnkit_cli", "train", "--dataset", "arrays", "--data-dir", str(data), "--epochs",
            str(N_EPOCHS), "--hidden", "8,8", "--conn", "self", "--batch-size", "8", "--device", "cpu", "--quiet",
            "--out", str(run), *extra]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", launch.LAUNCHED, launch.TIMEOUT_ENV):
        env.pop(k, None)
    return env


def _children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _start_and_wait_for_epoch(data: Path, run: Path, *extra) -> tuple[subprocess.Popen, list[int]]:
    """Start a 2-process run and return once its first checkpoint is on disk, with the training processes' PIDs."""
    proc = subprocess.Popen(_argv(data, run, "--devices", "2", *extra), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None and time.time() - t0 < 240, proc.communicate()[0] if proc.poll() else "slow"
        time.sleep(0.01)
    return proc, _children(proc.pid)


def _records(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _data(tmp_path_factory.mktemp("mp") / "d.npz")


@pytest.mark.slow
def test_frozen_rank_ends_the_run_within_the_timeout_and_resumes_bit_identically(data, tmp_path):
    ref = tmp_path / "ref"
    res = subprocess.run(_argv(data, ref, "--devices", "2"), env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    run = tmp_path / "run"
    proc, kids = _start_and_wait_for_epoch(data, run, "--rank-timeout", str(TIMEOUT_S))
    os.kill(kids[1], signal.SIGSTOP)  # rank 1 freezes; rank 0 waits for it in its next collective
    t0 = time.time()
    out, _ = proc.communicate(timeout=120)
    ended = time.time() - t0
    assert proc.returncode == 1 and not any(_alive(k) for k in kids), out
    assert ended < TIMEOUT_S + launch.GRACE + 10, ended  # the timeout, the grace for the frozen one, start/exit
    assert "rank 1 stopped answering" in out and "--devices 2 --resume" in out and "Traceback" not in out, out
    assert out.count("Error:") == 1, out
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "interrupted" and "rank 1" in status["message"]
    done = len(_records(run))
    assert 1 <= done < N_EPOCHS and RunDir(run).holder() is None
    res = subprocess.run(_argv(data, run)[:4] + ["--resume", str(run), "--quiet"], env=_env(), capture_output=True,
                         text=True, timeout=600)  # no --devices: the run's own 2 processes
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming with --devices 2" in res.stdout
    assert _records(run) == _records(ref)
    a, b = (torch.load(r / "checkpoint.pt", weights_only=True) for r in (ref, run))
    assert a["epoch"] == b["epoch"] == N_EPOCHS - 1
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_launcher_stops_every_process_and_frees_the_run(data, tmp_path, signum):
    run = tmp_path / "run"
    proc, kids = _start_and_wait_for_epoch(data, run, "--epochs", "400")
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, out
    assert not any(_alive(k) for k in kids) and RunDir(run).holder() is None
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "interrupted"
    hint = f"snnkit train --devices 2 --resume {run}"
    assert hint in out and hint in status["message"] and "Traceback" not in out, out
    assert out.count("--resume") == 1, out  # one line: the training processes leave it to the launcher


@pytest.mark.slow
def test_a_killed_rank_gives_one_line_and_no_traceback(data, tmp_path):
    run = tmp_path / "run"
    proc, kids = _start_and_wait_for_epoch(data, run, "--epochs", "400")
    os.kill(kids[1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and not any(_alive(k) for k in kids), out
    assert "rank 1 was killed by SIGKILL" in out and "Traceback" not in out and out.count("Error:") == 1, out
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"


def test_the_cause_is_the_first_real_failure():
    assert launch._cause({}, set()) == (0, "")
    code, line = launch._cause({0: launch.PEER_LOST}, {1})  # rank 0 lost rank 1, which was still running
    assert code == 1 and "rank 1 stopped answering" in line
    code, line = launch._cause({0: launch.PEER_LOST, 1: -signal.SIGKILL}, set())
    assert "rank 1 was killed by SIGKILL" in line
    code, line = launch._cause({1: 3}, {0})
    assert code == 3 and "rank 1 failed with exit code 3" in line
    assert "lost contact" in launch._cause({0: launch.PEER_LOST, 1: launch.PEER_LOST}, set())[1]


def test_devices_above_the_core_count_are_refused_unless_forced(tmp_path):
    from click.testing import CliRunner

    from snnkit_cli.main import cli

    n = launch.cpu_cores() + 1
    res = CliRunner().invoke(cli, ["train", "--device", "cpu", "--devices", str(n), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and f"on {n - 1} CPU core" in res.output and "--force-devices" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "r").exists()
    from snnkit_core.engine.config import TrainConfig

    launch.check_devices(n, TrainConfig(device="cpu"), force=True)  # forced: allowed


def test_resume_takes_the_world_size_of_the_run_or_refuses_another(tmp_path, monkeypatch):
    from snnkit_core.contract.errors import ConfigError

    for k in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(k, raising=False)
    run = RunDir(tmp_path)
    run.write_json(RunDir.MANIFEST, {"world_size": 2, "seed": 0})
    assert launch.resume_devices(run, None, False) == 2
    assert launch.resume_devices(run, 2, False) == 2
    with pytest.raises(ConfigError, match="--change-devices"):
        launch.resume_devices(run, 1, False)
    monkeypatch.setenv("WORLD_SIZE", "3")  # torchrun with another number
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="trained with 2 process"):
        launch.resume_devices(run, None, False)
    assert launch.resume_devices(run, None, True) is None  # asked for: the manifest records the new number
    assert run.read_json(RunDir.MANIFEST) == {"world_size": 3, "seed": 0}


def test_the_interrupted_hint_keeps_the_world_size(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")  # err_console writes to whatever sys.stderr is (capsys's here)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv(launch.LAUNCHED, raising=False)
    launch.interrupted_hint(Path("runs/x"), 5, 2)
    assert "snnkit train --devices 2 --resume runs/x" in capsys.readouterr().err
    monkeypatch.setenv(launch.LAUNCHED, "1")  # under --devices the launcher says it, once
    launch.interrupted_hint(Path("runs/x"), 5, 2)
    assert capsys.readouterr().err == ""


def test_a_lost_peer_ends_the_process_silently_under_the_launcher(monkeypatch):
    def exit_(code):
        raise SystemExit(code)

    monkeypatch.setattr(launch.os, "_exit", exit_)
    monkeypatch.setenv(launch.LAUNCHED, "1")
    with pytest.raises(SystemExit) as exc, launch.peer_errors(2):
        raise RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 3000ms for recv operation")
    assert exc.value.code == launch.PEER_LOST
    with pytest.raises(RuntimeError, match="gloo"), launch.peer_errors(1):  # one process: not a lost peer
        raise RuntimeError("gloo")
    with pytest.raises(ValueError), launch.peer_errors(2):  # not a collective's failure: as it was
        raise ValueError("x")
