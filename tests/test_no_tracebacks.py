"""Failures that used to print a Python traceback (issue 13) now print one clear message naming the way out."""

from __future__ import annotations

import json

from click.testing import CliRunner

from snnkit_cli.main import cli

ARGS = ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--quiet"]


def test_bench_repeats_zero():
    res = CliRunner().invoke(cli, ["bench", "--repeats", "0"])
    assert res.exit_code == 2 and "--repeats" in res.output and "Traceback" not in res.output


def test_an_optimizer_overflow_at_an_absurd_lr_is_a_divergence(fake, tmp_path):
    out = tmp_path / "r"
    res = CliRunner().invoke(cli, [*ARGS, "--epochs", "1", "--lr", "1e300", "--out", str(out)])
    # torch's per-tensor Adam raises on the overflow (caught and named); its fused form writes non-finite weights,
    # so the next loss is nan: either way a divergence with the advice, never a traceback
    said = ("optimizer step overflowed" in res.output) or ("loss became nan" in res.output)
    assert res.exit_code == 1 and said and "lower --lr" in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert json.loads((out / "status.json").read_text())["state"] == "diverged"


def test_ctrl_c_says_how_to_resume_and_resume_finishes(fake, tmp_path, monkeypatch):
    import snnkit_core.engine.training as training

    real = training.evaluate
    calls = []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # epoch 2's first evaluation (each epoch evaluates test and validation)
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(training, "evaluate", interrupted)
    out = tmp_path / "r"
    res = CliRunner().invoke(cli, [*ARGS, "--epochs", "3", "--out", str(out)])
    assert res.exit_code == 130 and f"snnkit train --resume {out}" in res.output, res.output
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "interrupted" and "--resume" in status["message"]
    monkeypatch.setattr(training, "evaluate", real)
    res = CliRunner().invoke(cli, ["train", "--resume", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_an_unsafe_checkpoint_is_refused_without_torchs_file_an_issue_text(fake, tmp_path):
    import datetime

    import torch

    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import train

    run = tmp_path / "r"
    list(train(TrainConfig(dataset="tiny", hidden=(8, 8, 8), epochs=1, device="cpu"), run))
    torch.save({"epoch": 0, "model": {}, "when": datetime.date(2026, 1, 1)}, run / "checkpoint.pt")
    res = CliRunner().invoke(cli, ["eval", str(run), "--checkpoint", "last"])
    assert res.exit_code == 1 and "cannot be read" in res.output and "checkpoint.pt" in res.output, res.output
    assert "Unsupported global" in res.output and "Traceback" not in res.output
    for advice in ("file an issue", "please use", "check the documentation of torch.load"):  # torch's, for code authors
        assert advice not in res.output.lower(), res.output


def test_weights_made_non_finite_by_an_epochs_last_step_never_reach_its_checkpoint(fake, tmp_path, monkeypatch):
    """No loss sees the update of an epoch's last step: the epoch end checks the weights, so the run stops as
    diverged and the checkpoint it points to (the epoch before) holds finite weights."""
    import torch

    steps = []
    real_step = torch.optim.Adam.step

    def poisoned(self, *a, **k):
        out = real_step(self, *a, **k)
        steps.append(1)
        if len(steps) == 2:  # the last (only) step of epoch 2: a weight becomes inf
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", poisoned)
    out = tmp_path / "r"
    res = CliRunner().invoke(cli, [*ARGS, "--epochs", "3", "--batch-size", "100000", "--out", str(out)])
    assert res.exit_code == 1 and "made the weights non-finite in epoch 2" in res.output, res.output
    assert "last good checkpoint, of epoch 1" in res.output and "Traceback" not in res.output
    assert json.loads((out / "status.json").read_text())["state"] == "diverged"
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    weights = [v for v in state["model"].values() if v.is_floating_point()]
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in weights)
