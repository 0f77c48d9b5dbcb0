"""End-to-end runs through the real plugins that assert learning (marked slow: ~10-30 s each on 2 cores)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snnkit_cli.main import cli


@pytest.mark.slow
def test_default_train_on_shipped_dataset_learns(tmp_path):
    """The README's main job, shortened: lif + srsc + bptt on espeak-digits, test voices unseen in training."""
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--epochs", "4", "--hidden", "64,64,64", "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["test_accuracy"] > 0.4  # chance is 0.1


@pytest.mark.slow
def test_fsdd_srsc_bptt_trains(tmp_path, shared_data):
    run = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        ["train", "--neuron", "lif", "--conn", "srsc", "--rule", "bptt", "--dataset", "fsdd", "--data-dir",
         str(shared_data), "--hidden", "64,64,64", "--epochs", "2", "--limit", "800", "--out", str(run), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["test_accuracy"] > 0.3
