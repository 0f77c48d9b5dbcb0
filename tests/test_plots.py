"""`snnkit plot`, metrics.csv and --tensorboard, through the CLI on the fake plugin's `tiny` dataset."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from snnkit_cli.main import cli
from snnkit_core.engine.metrics import BASE_COLUMNS

pytest.importorskip("matplotlib", reason="plotting is the optional extra snnkit[plot]")


@pytest.fixture
def runner(fake):
    return CliRunner()


def _train(runner, run, *extra, neuron=("--set", "neuron.tau_m=8", "--set", "neuron.v_th=0.3")):
    args = ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "2", "--out", str(run), "--quiet", *neuron,
            *extra]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    return run


def _check_png(path, min_w=300, min_h=200):
    from matplotlib.image import imread

    img = imread(path)  # (H, W, 3 or 4) floats in [0, 1]
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, (path.name, img.shape)
    rgb = img[..., :3]
    ink = (rgb.min(axis=2) < 0.9).mean()  # fraction of pixels that are not (near) white
    assert ink > 0.01 and rgb.std() > 0.02, (path.name, ink, rgb.std())
    return img


def test_plot_writes_every_png_and_none_is_blank(runner, tmp_path):
    run = _train(runner, tmp_path / "run", "--rule", "bptt", "--rule", "bip")
    (run / "eval").mkdir()
    conf = [[20, 5], [3, 36]]  # the format `snnkit eval` writes (rows = true class, columns = predicted)
    (run / "eval" / "test.json").write_text(json.dumps({
        "split": "test", "n": 64, "loss": 0.5, "accuracy": 56 / 64, "classes": ["zero", "one"],
        "per_class_accuracy": [0.8, 36 / 39], "confusion": conf}))
    res = runner.invoke(cli, ["plot", str(run), "--samples", "16"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (run / "plots").glob("*.png"))
    assert names == ["bip.png", "confusion_test.png", "curves.png", "raster.png", "rates.png"]
    for name in names:
        assert f"plots/{name}" in res.output.replace("\\", "/")
        _check_png(run / "plots" / name)


def test_plot_asrc_spans(runner, tmp_path):
    run = _train(
        runner, tmp_path / "run", "--neuron", "lif-soft", "--conn", "asrc", "--set", "conn.max_span=3", neuron=()
    )
    res = runner.invoke(cli, ["plot", str(run), "--metrics-only"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (run / "plots").glob("*.png")) == ["asrc.png", "curves.png"]
    _check_png(run / "plots" / "asrc.png")


def test_plot_errors_are_clear(runner, tmp_path, monkeypatch):
    res = runner.invoke(cli, ["plot", str(tmp_path)])
    assert res.exit_code == 1 and "metrics.jsonl" in res.output and "Traceback" not in res.output
    run = _train(runner, tmp_path / "run")
    (run / "eval").mkdir()
    (run / "eval" / "test.json").write_text(json.dumps({"classes": ["a", "b"], "confusion": [[1, 2, 3]]}))
    res = runner.invoke(cli, ["plot", str(run), "--metrics-only"])
    assert res.exit_code == 1 and "expected 2 x 2" in res.output
    res = runner.invoke(cli, ["plot", str(run), "--sample", "999"])
    assert res.exit_code == 1 and "--sample must be in 0..63" in res.output
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    res = runner.invoke(cli, ["plot", str(run)])
    assert res.exit_code == 1 and "pip install 'snnkit[plot]'" in res.output and "Traceback" not in res.output


def test_metrics_csv_matches_jsonl_and_survives_resume(runner, tmp_path):
    run = _train(runner, tmp_path / "run", "--rule", "bptt", "--rule", "bip")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
        header = list(rows[0])
    assert tuple(header[: len(BASE_COLUMNS)]) == BASE_COLUMNS
    assert "bip.layer0.tau_m_mean" in header and "bip.layer0.tau_m_deciles.10" in header
    assert len(rows) == len(records) == 2
    for row, rec in zip(rows, records):
        assert int(row["epoch"]) == rec["epoch"]
        assert float(row["test_accuracy"]) == rec["test_accuracy"]
        assert float(row["bip.layer1.tau_m_max"]) == rec["bip"]["layer1"]["tau_m_max"]
        assert float(row["val_accuracy"]) == rec["val_accuracy"]  # the run carves a validation split
    # a resumed run truncates metrics.jsonl to the checkpoint; the CSV follows it
    (run / "metrics.jsonl").write_text(
        (run / "metrics.jsonl").read_text() + json.dumps({**records[-1], "epoch": 3}) + "\n"
    )
    from snnkit_core.engine.rundir import RunDir

    RunDir(run).write_records(RunDir(run).metrics())
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 3
    # no validation split: an empty cell, the same columns
    run0 = _train(runner, tmp_path / "run0", "--val-fraction", "0")
    with open(run0 / "metrics.csv", newline="") as f:
        rows0 = list(csv.DictReader(f))
    assert list(rows0[0])[: len(BASE_COLUMNS)] == list(BASE_COLUMNS) and all(r["val_accuracy"] == "" for r in rows0)


def test_tensorboard_scalars_are_written(runner, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging is the optional extra snnkit[tensorboard]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _train(runner, tmp_path / "run", "--tensorboard")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"loss/train", "loss/test", "accuracy/train", "accuracy/test", "lr"} <= set(tags)
    events = acc.Scalars("accuracy/test")
    assert [e.step for e in events] == [1, 2]
    assert np.allclose([e.value for e in events], [r["test_accuracy"] for r in records])


def test_tensorboard_missing_is_a_clear_error_before_training(runner, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    res = runner.invoke(
        cli,
        ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet",
         "--tensorboard"],
    )
    assert res.exit_code == 1 and "pip install 'snnkit[tensorboard]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_plot_best_weights_and_moved_data_root(runner, tmp_path):
    import shutil

    run = _train(runner, tmp_path / "run")
    (run / "best.pt").unlink()  # e.g. a run trained with --val-fraction 0
    res = runner.invoke(cli, ["plot", str(run), "--weights", "best", "--samples", "4"])
    assert res.exit_code == 0 and "weights: last" in res.output  # as eval: no best.pt, the last checkpoint
    ck = __import__("torch").load(run / "checkpoint.pt", weights_only=True)
    __import__("torch").save(ck["model"], run / "best.pt")  # a bare state dict is accepted as well as {"model": ...}
    res = runner.invoke(cli, ["plot", str(run), "--weights", "best", "--samples", "4", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    _check_png(run / "plots" / "raster.png")
    shutil.rmtree(run / "plots")
