"""Multi-process data-parallel training (snnkit_core.engine.distributed) on CPU with the gloo backend.

Two processes with --batch-size B must end an epoch with the weights of one process with 2B (same examples
per step, gradients averaged over the global batch), and a run must resume under torchrun.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snnkit_cli.launch import free_port
from snnkit_core.engine import distributed
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.distributed import World, shard
from snnkit_core.engine.training import build, train

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is "
                                                                                                "not available")]

N_TRAIN = 65  # 4 global batches of 16 and one of a single example: rank 1's part of it is empty


def _data(path: Path) -> Path:
    rng = np.random.default_rng(0)

    def mk(n):
        y = rng.integers(0, 2, n)
        x = rng.poisson(0.3, (n, 10, 8)).astype(np.float32)
        x[y == 1, :, :4] += rng.poisson(1.0, (int((y == 1).sum()), 10, 4))
        x[y == 0, :, 4:] += rng.poisson(1.0, (int((y == 0).sum()), 10, 4))
        return x, y

    (xtr, ytr), (xte, yte) = mk(N_TRAIN), mk(21)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


def _cfg(data: Path, **kw) -> TrainConfig:
    base = dict(neuron="lif", conn="self", rules=("bptt",), dataset="arrays", data_dir=str(data), hidden=(8, 8),
                epochs=1, batch_size=16, device="cpu", dropout=0.0)
    base.update(kw)
    return TrainConfig(**base)


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def _snnkit(*args, launcher=()):
    return subprocess.run([sys.executable, *launcher, "-m", "snnkit_cli", *args], capture_output=True, text=True,
                          env=_env(), timeout=300)


def _weights(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """One epoch of 2 processes x batch 8 (snnkit train --devices 2)."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = _data(tmp / "d.npz")
    run = tmp / "ddp"
    res = _snnkit("train", "--dataset", "arrays", "--data-dir", str(data), "--neuron", "lif", "--conn", "self",
                  "--hidden", "8,8", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--out", str(run),
                  "--quiet", "--devices", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    return data, run, res


def test_shard_splits_each_global_batch():
    idx = torch.arange(10)
    assert shard(idx, World()).tolist() == idx.tolist()
    parts = [shard(idx, World(r, 3)).tolist() for r in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert shard(torch.arange(1), World(1, 2)).numel() == 0


def test_sync_gradients_weights_and_missing_grads(tmp_path):
    """2 gloo processes: mean weights rank r's gradient by n_r / n, sum adds them; a gradient present on one rank
    only is reduced with zeros elsewhere; a parameter with no gradient anywhere keeps None."""
    worker = Path(__file__).with_name("dist_sync_worker.py")
    env = {**_env(), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    procs = [
        subprocess.Popen([sys.executable, str(worker), str(tmp_path)],
                         env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for r in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["world"] == [0, 2] and r1["world"] == [1, 2]
    for r in (r0, r1):
        # n_0 = 1, n_1 = 2, n = 3: mean = (1 * 1 + 2 * 2) / 3; sum = 1 + 2
        assert r["mean"]["a"] == pytest.approx([5 / 3] * 3) and r["sum"]["a"] == pytest.approx([3.0] * 3)
        assert r["mean"]["b"] == pytest.approx([5.0 * 2 / 3] * 3) and r["sum"]["b"] == pytest.approx([5.0] * 3)
        assert r["mean"]["c"] and r["sum"]["c"]  # no gradient anywhere: stays None
        assert r["any"] == [True, False] and r["sums"] == pytest.approx([3.0, 1.0])


def test_two_processes_give_the_weights_of_one_with_the_doubled_batch(ddp_run, tmp_path):
    data, run, res = ddp_run
    one = tmp_path / "one"
    recs = list(train(_cfg(data, batch_size=16), one))
    a, b = _weights(one), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), (k, float((a[k] - b[k]).abs().max()))
    start = build(_cfg(data)).network.state_dict()  # the seeded initial weights: the epoch did move them
    assert max(float((a[k] - start[k]).abs().max()) for k in a) > 1e-3
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1  # rank 0 alone writes: one line per epoch
    assert rows[0]["train_loss"] == pytest.approx(recs[0].train_loss, rel=1e-5)
    assert rows[0]["test_accuracy"] == pytest.approx(recs[0].test_accuracy)
    assert json.loads((run / "manifest.json").read_text())["world_size"] == 2
    assert res.stdout.count("final test accuracy") == 1  # rank 1 renders nothing


def test_resume_under_torchrun(ddp_run, tmp_path):
    """The 1-epoch DDP run stands for a 2-epoch run killed after epoch 1; torchrun resumes it with 2 processes."""
    data, run, _ = ddp_run
    killed = tmp_path / "killed"
    shutil.copytree(run, killed)
    cfg_path = killed / "config.toml"
    cfg_path.write_text(cfg_path.read_text().replace("epochs = 1", "epochs = 2"))
    ck = torch.load(
        killed / "checkpoint.pt", weights_only=True
    )  # the checkpoint records the config it was trained with
    ck["config"]["epochs"] = 2
    torch.save(ck, killed / "checkpoint.pt")
    res = _snnkit("train", "--resume", str(killed), "--quiet",
                  launcher=("-m", "torch.distributed.run", "--nproc-per-node", "2"))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    one = tmp_path / "one"
    list(train(_cfg(data, batch_size=16, epochs=2), one))
    a, b = _weights(one), _weights(killed)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-5), (k, float((a[k] - b[k]).abs().max()))
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_devices_refused_under_torchrun(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from snnkit_cli.main import cli
    from snnkit_cli.render import console

    monkeypatch.setattr(console, "quiet", False)  # rank 1 silences the console: undone after the test
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    res = CliRunner().invoke(cli, ["train", "--devices", "2", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "under torchrun" in res.output and "Traceback" not in res.output
    assert distributed.env_world() == World(1, 2, 0) and console.quiet
    monkeypatch.delenv("WORLD_SIZE")
    res = CliRunner().invoke(cli, ["train", "--devices", "2", "--neuron", "lfi", "--out", str(tmp_path / "r")])
    assert (
        res.exit_code == 1 and "lif" in res.output and "Traceback" not in res.output
    )  # said once, before any process starts
    assert not (tmp_path / "r").exists()
