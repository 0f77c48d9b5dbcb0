"""The CLI through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from snnkit_cli.main import cli

from .fakeplugin import FakePlugin


@pytest.fixture
def runner(fresh_plugins):
    fresh_plugins.register_plugin(FakePlugin(), name="snnkit-fake")
    yield CliRunner()
    fresh_plugins.unregister_plugin("snnkit-fake")


def test_list_plugins_json(runner):
    res = runner.invoke(cli, ["list-plugins", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert set(rows["snnkit-neurons"]) == {"name", "version", "components", "error"}
    assert {"kind": "rule", "name": "bptt"} in rows["snnkit-rules"]["components"]
    assert {"kind": "dataset", "name": "tiny"} in rows["snnkit-fake"]["components"]


def test_list_plugins_table(runner):
    res = runner.invoke(cli, ["list-plugins"])
    assert res.exit_code == 0 and "snnkit-connectivity" in res.output


def test_info_shows_parameters_and_compatibility(runner):
    res = runner.invoke(cli, ["info", "lif"])
    assert res.exit_code == 0, res.output
    assert "tau_m" in res.output and "steps" in res.output and "bptt" in res.output
    res = runner.invoke(cli, ["info", "bptt"])
    assert "surrogate" in res.output and "lif" in res.output


def test_info_unknown_name_suggests(runner):
    res = runner.invoke(cli, ["info", "lf"])
    assert res.exit_code == 1
    assert "Did you mean 'lif'" in res.output
    assert "Traceback" not in res.output


def test_train_eval_and_resume(runner, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "2", "--out", str(run), "--quiet", "--set",
            "neuron.tau_m=8"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "final test accuracy" in res.output
    assert 'tau_m = "8"' in (run / "config.toml").read_text() or "tau_m = 8" in (run / "config.toml").read_text()
    res = runner.invoke(cli, ["eval", str(run)])
    assert res.exit_code == 0 and "test accuracy" in res.output
    res = runner.invoke(cli, ["eval", str(run), "--limit", "3", "--batch-size", "2"])
    assert res.exit_code == 0 and "(3 examples)" in res.output, res.output
    res = runner.invoke(cli, ["eval", str(run), "--limit", "0"])
    assert res.exit_code == 2 and "--limit" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["train", "--resume", str(run)])
    assert res.exit_code == 0  # nothing left to do: 2 of 2 epochs done
    # options that would change the run are refused, not silently ignored
    res = runner.invoke(cli, ["train", "--resume", str(run), "--lr", "0.1", "--epochs", "5"])
    assert res.exit_code == 1 and "--epochs, --lr cannot apply" in res.output and "--config" in res.output, res.output
    res = runner.invoke(cli, ["train", "--dataset", "tiny", "--epochs", "1", "--out", str(run)])
    assert res.exit_code == 1 and "--resume" in res.output


def test_train_errors_are_clean(runner, tmp_path):
    res = runner.invoke(cli, ["train", "--rule", "picky", "--dataset", "tiny", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "incompatible combination" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["train", "--conn", "srcs", "--dataset", "tiny"])
    assert (
        res.exit_code == 1
        and "Did you mean" in res.output
        and "'srsc'" in res.output.split("Did you mean")[1].split("?")[0]
    )
    res = runner.invoke(cli, ["train", "--set", "nonsense", "--dataset", "tiny"])
    assert res.exit_code == 1 and "SECTION.KEY=VALUE" in res.output


def test_config_file_and_override(runner, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\ndataset = "tiny"\nhidden = [8, 8, 8]\nepochs = 5\nconn = "ff"\n')
    res = runner.invoke(cli, ["train", "--config", str(cfg), "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r" / "config.toml").read_text()
    assert "epochs = 1" in text and 'conn = "ff"' in text


def test_data_info(runner):
    res = runner.invoke(cli, ["data", "info", "tiny"])
    assert res.exit_code == 0 and "64" in res.output


def _printed_cache_files(output):
    return [Path(line.split("cache: ", 1)[1].strip()) for line in output.splitlines() if line.startswith("cache: /")]


def test_data_info_prints_the_cache_files_it_used(runner):
    res = runner.invoke(cli, ["data", "info", "espeak-digits"])
    assert res.exit_code == 0, res.output
    files = _printed_cache_files(res.output)
    assert files and all(f.suffix == ".pt" and f.exists() for f in files), res.output
    assert all("espeak-digits" in f.parts for f in files)
    res = runner.invoke(cli, ["data", "info", "tiny"])  # an in-memory test dataset: nothing cached
    assert "cache: none" in res.output


def test_data_info_mnist_family_cache_file(runner, shared_data):
    if not (shared_data / "mnist").is_dir():
        pytest.skip("no MNIST copy in ../shared/datasets")
    res = runner.invoke(cli, ["data", "info", "smnist", "--data-dir", str(shared_data)])
    assert res.exit_code == 0, res.output
    files = _printed_cache_files(res.output)
    assert files and all(f.exists() and f.parent.name == "mnist-idx" for f in files), res.output


def test_info_prints_the_components_own_docstring(runner):
    outs = {}
    for name in ("self", "skip"):
        res = runner.invoke(cli, ["info", name])
        assert res.exit_code == 0, res.output
        outs[name] = res.output
    assert "one recurrent weight per neuron" in outs["self"] and "one recurrent weight per neuron" not in outs["skip"]


def test_data_dir_may_name_a_file_for_arrays_only(runner, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    f = tmp_path / "mine.npz"
    np.savez(f, x_train=rng.random((12, 6, 4), dtype=np.float32), y_train=np.arange(12) % 3,
             x_test=rng.random((6, 6, 4), dtype=np.float32), y_test=np.arange(6) % 3)
    res = runner.invoke(
        cli,
        ["train", "--dataset", "arrays", "--data-dir", str(f), "--hidden", "8,8,8", "--epochs", "1", "--out",
         str(tmp_path / "r"), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["data", "info", "fsdd", "--data-dir", str(f)])
    assert res.exit_code == 1 and "is a file" in res.output and "Only `arrays`" in res.output, res.output


@pytest.mark.parametrize(
    "args, message",
    [(["--batch-size", "0"], "batch_size must be an integer >= 1"), (["--lr", "-1"], "lr must be a number > 0"),
     (["--lr", "nan"], "lr must be a number"), (["--epochs", "0"], "epochs must be an integer >= 1"),
     (["--limit", "0"], "limit must be an integer >= 1"), (["--hidden", "8,0,8"], "hidden sizes must be positive"),
     (["--set", "neuron.tau_m=1"], "lif needs tau_m > 1"),
     (["--set", "conn.init_scale=-1"], "conn.init_scale must be >= 0")],
)
def test_bad_option_values_fail_cleanly_before_a_run_exists(runner, tmp_path, args, message):
    out = tmp_path / "r"
    res = runner.invoke(
        cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out", str(out), *args]
    )
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output, res.output
    assert not out.exists()


@pytest.mark.parametrize(
    "body, message",
    [('epochs = "ten"', "epochs must be an integer"), ("rules = 5", "rules must be a rule name"),
     ("dropout = 1.5", "dropout must be a number >= 0 and < 1"), ("params = 3", "params must map a section")],
)
def test_config_values_of_the_wrong_type_fail_cleanly(runner, tmp_path, body, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\ndataset = "tiny"\n{body}\n')
    res = runner.invoke(cli, ["train", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "r").exists()


def test_relative_data_dir_is_stored_absolute_and_resume_may_move_it(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    run = tmp_path / "run"
    res = runner.invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--data-dir", "data",
                              "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert f'data_dir = "{tmp_path / "data"}"' in (run / "config.toml").read_text()
    (tmp_path / "moved").mkdir()
    res = runner.invoke(cli, ["train", "--resume", str(run), "--data-dir", "moved"])
    assert res.exit_code == 0, res.output
    assert f'data_dir = "{tmp_path / "moved"}"' in (run / "config.toml").read_text()


def test_data_on_device_is_recorded_and_trains(runner, tmp_path):
    run = tmp_path / "r"
    res = runner.invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--data-on-device",
                              "--device", "cpu", "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "data_on_device = true" in (run / "config.toml").read_text()


def test_eval_and_resume_may_change_device_and_backend_but_check_values(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("SNNKIT_TRITON_ON_CPU", raising=False)
    run = tmp_path / "r"
    res = runner.invoke(
        cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out", str(run), "--quiet"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["eval", str(run), "--backend", "reference", "--device", "cpu"])
    assert res.exit_code == 0 and "test accuracy" in res.output, res.output
    res = runner.invoke(cli, ["eval", str(run), "--batch-size", "-1"])
    assert res.exit_code == 2 and "--batch-size" in res.output
    res = runner.invoke(cli, ["train", "--resume", str(run), "--backend", "torch", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    text = (run / "config.toml").read_text()
    assert 'backend = "torch"' in text and 'device = "cpu"' in text


def test_backend_triton_without_cuda_fails_before_the_run_directory(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("SNNKIT_TRITON_ON_CPU", raising=False)
    out = tmp_path / "t"
    res = runner.invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--device", "cpu",
                              "--backend", "triton", "--out", str(out)])
    assert res.exit_code == 1 and "--backend triton: no Triton kernel" in res.output
    assert "Triton runs on CUDA" in res.output and "--backend auto or torch" in res.output, res.output
    assert not out.exists()


def test_a_run_without_a_c_compiler_says_so_at_start_and_in_the_manifest(runner, tmp_path, monkeypatch):
    """No C compiler and no prebuilt library: the CPU layers run the torch loop, `snnkit train` prints why before the
    first epoch, and manifest.json records per layer what ran and why the C kernel was skipped."""
    from snnkit_core.contract import implementations
    from snnkit_neurons.kernels import cpu

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(cpu.shutil, "which", lambda name: None)
    monkeypatch.setattr(cpu, "_installed", lambda: None)
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    cpu.forget()
    implementations.forget_availability()
    try:
        out = tmp_path / "run"
        res = runner.invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out", str(out),
                                  "--quiet", "--device", "cpu"])
        assert res.exit_code == 0, res.output
        assert "c-kernel cannot run here" in res.output and "no C compiler" in res.output
        plan = json.loads((out / "manifest.json").read_text())["plan"]
        assert [p["implementation"] for p in plan] == ["torch-loop"] * len(plan)
        assert all(any(s["implementation"] == "c-kernel" and "no C compiler" in s["reason"] for s in p["skipped"])
                   for p in plan)
    finally:
        monkeypatch.undo()
        cpu.forget()
        implementations.forget_availability()
