"""`snnkit train --logger NAME`: the logger hook, MLflow and TensorBoard, on the fake plugin's `tiny` dataset."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import snnkit_core
from snnkit_cli.main import cli


def _train(tmp_path, *extra, name="run"):
    run = tmp_path / name
    args = ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "2", "--out", str(run), "--quiet",
            "--set", "neuron.tau_m=8", "--set", "neuron.v_th=0.3", *extra]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return run, [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_mlflow_run_is_read_back_by_search_runs(fake, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="MLflow logging is the optional extra snnkit[mlflow]")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run, records = _train(tmp_path, "--logger", "mlflow", "--lr", "0.003")
    from snnkit_cli.mlflow_logger import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(run))
    found = mlflow.search_runs(experiment_names=["snnkit"], output_format="list")
    assert len(found) == 1
    data = found[0].data
    assert data.params["lr"] == "0.003" and data.params["hidden"] == "8,8,8" and data.params["dataset"] == "tiny"
    assert data.metrics["test_accuracy"] == pytest.approx(records[-1]["test_accuracy"])
    history = mlflow.MlflowClient().get_metric_history(found[0].info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]
    assert np.allclose([m.value for m in history], [r["train_loss"] for r in records])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(found[0].info.run_id)}
    assert {"config.toml", "summary.json"} <= artifacts
    assert found[0].info.status == "FINISHED"


def test_mlflow_missing_is_a_clear_error_before_training(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out",
                                   str(tmp_path / "r"), "--quiet", "--logger", "mlflow"])
    assert res.exit_code == 1 and "pip install 'snnkit[mlflow]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_unknown_logger_names_the_known_ones(fake, tmp_path):
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out",
                                   str(tmp_path / "r"), "--quiet", "--logger", "nope"])
    assert res.exit_code == 1 and "unknown --logger 'nope'" in res.output and "mlflow" in res.output
    assert not (tmp_path / "r").exists()


class _Recorder:
    """A plugin adding a logger through the hook; it remembers what it was given."""

    seen: list = []

    @snnkit_core.hookimpl
    def register_loggers(self, register):
        from snnkit_cli.loggers import Logger

        class Memory(Logger):
            name = "memory"

            def epoch(self, record):
                _Recorder.seen.append(("epoch", record["epoch"], self.params["dataset"]))

            def close(self, finished):
                _Recorder.seen.append(("close", finished, (self.run_dir / "summary.json").exists()))

        register(Memory)


def test_a_plugin_adds_a_logger_through_the_hook(fake, tmp_path):
    fake.register_plugin(_Recorder(), name="snnkit-memory-logger", version="1.0")
    try:
        _Recorder.seen.clear()
        _train(tmp_path, "--logger", "memory")
        assert _Recorder.seen == [("epoch", 1, "tiny"), ("epoch", 2, "tiny"), ("close", True, True)]
    finally:
        fake.unregister_plugin("snnkit-memory-logger")


def test_tensorboard_groups_lists_and_writes_hparams(fake, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging is the optional extra snnkit[tensorboard]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from snnkit_cli.tensorboard import TensorBoardLogger

    spans = [0.1 * i for i in range(34)]
    logger = TensorBoardLogger(tmp_path, {"lr": 0.003, "hidden": "8,8,8", "neuron": "lif"})
    for epoch in (1, 2):
        logger.epoch({"epoch": epoch, "train_loss": 1.0 / epoch, "test_accuracy": 0.5,
                      "asrc": {f"layer{i}": {"span": 3, "alpha": spans, "tau": 2.0} for i in range(3)}})
    logger.close(True)
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    assert len(tags["scalars"]) == 2 + 3 * 3  # loss, accuracy; per layer span, tau, alpha/mean
    assert sorted(tags["histograms"]) == [f"asrc/layer{i}/alpha" for i in range(3)]
    assert acc.Scalars("asrc/layer0/alpha/mean")[0].value == pytest.approx(np.mean(spans))
    assert acc.Histograms("asrc/layer1/alpha")[-1].histogram_value.num == len(spans)
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(0.003) and hparams["neuron"].string_value == "lif"


def test_tensorboard_flag_is_an_alias_of_the_logger(fake, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging is the optional extra snnkit[tensorboard]")
    run, _ = _train(tmp_path, "--tensorboard")
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))


class _Broken:
    @snnkit_core.hookimpl
    def register_loggers(self, register):
        raise RuntimeError("boom")


def test_a_broken_logger_plugin_is_named_and_does_not_stop_other_loggers(fake, tmp_path):
    fake.register_plugin(_Broken(), name="snnkit-broken-logger", version="1.0")
    fake.register_plugin(_Recorder(), name="snnkit-memory-logger", version="1.0")
    try:
        _Recorder.seen.clear()
        _train(tmp_path, "--logger", "memory")
        assert _Recorder.seen[-1] == ("close", True, True)
        res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out",
                                       str(tmp_path / "r"), "--quiet", "--logger", "nope"])
        assert res.exit_code == 1 and "'snnkit-broken-logger' failed to register its loggers" in res.output
        assert "boom" in res.output
    finally:
        fake.unregister_plugin("snnkit-broken-logger")
        fake.unregister_plugin("snnkit-memory-logger")


def test_wandb_offline_run_holds_the_metrics_config_and_files(fake, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B logging is the optional extra snnkit[wandb]")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run, records = _train(tmp_path, "--logger", "wandb", "--lr", "0.003")
    (offline,) = (run / "wandb").glob("offline-run-*")  # offline: nothing was sent anywhere
    assert (offline / "files" / "config.toml").read_text() == (run / "config.toml").read_text()
    assert (offline / "files" / "summary.json").exists()
    (log,) = offline.glob("run-*.wandb")
    data = log.read_bytes()  # W&B's record log (protobuf, uncompressed): values are stored as JSON text
    for record in records:
        for key in ("train_loss", "test_accuracy"):
            assert json.dumps(record[key]).encode() in data
    assert b"train_loss" in data and b"hidden" in data and b"8,8,8" in data and b"0.003" in data
