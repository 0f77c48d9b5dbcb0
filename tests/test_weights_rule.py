"""One rule for weights: every command that reads a finished run (eval, eval --noise, plot, export) reads the
same checkpoint by default (best.pt), takes --weights last|best and names the weights it used."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import snnkit.run
from snnkit_cli.main import cli


@pytest.fixture
def run(fake, tmp_path):
    """A finished run whose best.pt differs from checkpoint.pt, so that using one for the other shows."""
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out",
                                   str(run), "--quiet", "--conn", "srsc", "--rule", "tssl-bp"])
    assert res.exit_code == 0, res.output
    best = torch.load(run / "best.pt", weights_only=True)
    best["model"] = {k: v * 0.5 if v.is_floating_point() else v for k, v in best["model"].items()}
    torch.save(best, run / "best.pt")
    return run


@pytest.fixture
def loaded(monkeypatch):
    """The weights each command loaded (every command goes through snnkit.run's one loader)."""
    seen = []
    real = snnkit.run.load_weights

    def spy(built, run, which="last"):
        seen.append(which)
        return real(built, run, which)

    monkeypatch.setattr(snnkit.run, "load_weights", spy)
    return seen


def test_eval_plot_and_export_use_the_same_weights_by_default(run, tmp_path, loaded):
    runner = CliRunner()
    res = runner.invoke(cli, ["eval", str(run), "--no-write"])
    assert res.exit_code == 0, res.output
    assert "weights: best" in res.output
    res = runner.invoke(cli, ["eval", str(run), "--noise", "0.1", "--no-write"])
    assert res.exit_code == 0, res.output
    assert "weights: best" in res.output
    res = runner.invoke(cli, ["plot", str(run), "--samples", "4"])
    assert res.exit_code == 0, res.output
    assert "weights: best" in res.output
    out = tmp_path / "net.nir"
    res = runner.invoke(cli, ["export", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "weights: best" in res.output
    assert loaded == ["best"] * 4
    best = torch.load(run / "best.pt", weights_only=True)["model"]["layers.1.ff.weight"]
    np.testing.assert_allclose(nir.read(out).nodes["ff1"].weight, best.double().numpy())


def test_weights_last_is_followed_by_every_command(run, tmp_path, loaded):
    runner = CliRunner()
    for args in (["eval", str(run), "--no-write"], ["plot", str(run), "--samples", "4"],
                 ["export", str(run), "--out", str(tmp_path / "net.nir")]):
        res = runner.invoke(cli, [*args, "--weights", "last"])
        assert res.exit_code == 0, res.output
        assert "weights: last" in res.output
    assert loaded == ["last"] * 3
    last = torch.load(run / "checkpoint.pt", weights_only=True)["model"]["layers.1.ff.weight"]
    np.testing.assert_allclose(nir.read(tmp_path / "net.nir").nodes["ff1"].weight, last.double().numpy())


def test_eval_checkpoint_is_a_deprecated_alias_that_still_works(run, loaded):
    res = CliRunner().invoke(cli, ["eval", str(run), "--checkpoint", "last", "--no-write", "--json"])
    assert res.exit_code == 0, res.output
    assert "--checkpoint is deprecated" in res.stderr and "--weights last" in res.stderr
    assert json.loads(res.stdout)["results"][0]["checkpoint"] == "last" and loaded == ["last"]
    assert "--checkpoint" not in CliRunner().invoke(cli, ["eval", "--help"]).output  # hidden
