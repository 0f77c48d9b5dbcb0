"""Resource limits, degenerate input and hostile plugins: the mechanisms behind the sweep's "resources",
"degenerate input" and "plugins" classes, each driven in-process (docs/reliability.md)."""

from __future__ import annotations

import os
import signal
import time

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnkit_cli import resources
from snnkit_cli.main import cli
from snnkit_core.contract.errors import ConfigError, DatasetError


def _npz(path, **over):
    rng = np.random.default_rng(0)
    y = np.arange(12) % 2
    x = rng.random((12, 6, 4), dtype=np.float32)
    d = dict(x_train=x, y_train=y, x_test=x[:6].copy(), y_test=y[:6].copy())
    d.update(over)
    np.savez(path, **d)
    return path


def _train(tmp_path, *args, data=None):
    out = tmp_path / "run"
    data = data or _npz(tmp_path / "d.npz")
    res = CliRunner().invoke(cli, ["train", "--dataset", "arrays", "--data-dir", str(data), "--hidden", "8,8,8",
                                   "--epochs", "1", "--batch-size", "4", "--out", str(out), "--quiet", *args])
    return res, out


# ----------------------------------------------------------------------------------------- resources


def test_threads_above_the_cores_need_force_and_never_pass_the_cap(monkeypatch):
    monkeypatch.setattr(resources, "cores", lambda: 2)
    resources.check_threads(2)
    with pytest.raises(ConfigError, match=r"--threads 3 is more than the 2 cores.*at most 2 \(at most 8 with snnkit "
                                          r"train --force-threads\)"):
        resources.check_threads(3, force=False)
    with pytest.raises(ConfigError, match=r"give at most 2$"):  # eval, bench, sweep: no flag to name
        resources.check_threads(3)
    resources.check_threads(8, force=True)
    for n in (9, 2**31, 10**12):  # past the cap even when forced: OpenMP fails to start (or overflows) there
        with pytest.raises(ConfigError, match=r"at most 2 \(at most 8 with"):
            resources.check_threads(n, force=True)


def test_the_cores_are_those_this_process_may_use():
    assert resources.cores() == len(os.sched_getaffinity(0))


def test_seed_and_run_counts_are_refused_before_any_list_is_made():
    from snnkit_cli.runs import parse_seeds

    assert parse_seeds("3") == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"--seeds 1000000000 asks for 1,000,000,000 runs; at most 1,000"):
        parse_seeds("1000000000")
    with pytest.raises(ConfigError, match="at most 1,000"):
        parse_seeds(",".join(map(str, range(1001))))


def test_the_weight_estimate_counts_what_the_network_holds():
    """The estimate's weights (16 bytes each: the weight, its gradient, Adam's two moments) against the parameters
    of the network snnkit builds: the feedforward layers exactly, a dense recurrence's N x N too."""
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import build

    for conn, dense in (("ff", False), ("dense", True)):
        cfg = TrainConfig(neuron="lif", conn=conn, rules=("bptt",), hidden=(16, 12), batch_size=4, device="cpu")
        built = build(cfg)
        held = sum(p.numel() for p in built.network.parameters())
        est = resources.estimate(cfg, built.dataset.input_size, built.dataset.num_classes, 100, dense)
        assert est["weights"] / 16 <= held <= 1.1 * est["weights"] / 16, (conn, held, est)
        assert est["activations"] == 4 * 4 * 4 * 100 * (16 + 12 + 10)  # bytes x saved x batch x T x neurons


def test_a_run_that_cannot_fit_is_refused_with_the_figures_and_force_memory_lets_it_train(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "available_bytes", lambda device="cpu": (2**10, "this machine has"))
    res, out = _train(tmp_path, "--hidden", "300,8,8")
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "needs at least" in text and "GiB" in text and "0.0 GiB available" in text and "--force-memory" in text
    assert "Traceback" not in res.output and not out.exists()
    res, out = _train(tmp_path, "--hidden", "300,8,8", "--force-memory")
    assert res.exit_code == 0 and "final test accuracy" in res.output, res.output


def test_the_python_api_refuses_a_run_that_cannot_fit_unless_forced(tmp_path, monkeypatch):
    import snnkit

    monkeypatch.setattr(resources, "available_bytes", lambda device="cpu": (2**10, "this machine has"))
    with pytest.raises(ConfigError, match="needs at least .* GiB"):
        snnkit.train(out=tmp_path / "r", hidden=(300, 8, 8), epochs=1)
    assert not (tmp_path / "r").exists()
    run = snnkit.train(out=tmp_path / "f", hidden=(8, 8, 8), epochs=1, batch_size=64, force_memory=True)
    assert run.path == tmp_path / "f"


def test_bench_refuses_a_workload_that_cannot_fit_before_allocating_it(monkeypatch):
    """--steps / --batch make every workload bigger: checked against the memory before any tensor is made."""
    monkeypatch.setattr(resources, "available_bytes", lambda device="cpu": (2**30, "this machine has"))
    made = []
    monkeypatch.setattr("snnkit_cli.bench.run_benchmarks", lambda *a, **k: made.append(a))
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "tiny", "--steps", "10000000"])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "tiny/srsc at T 10000000 x batch 8 needs at least" in text, res.output
    assert "1.0 GiB available" in text and "--steps" in text and not made and "Traceback" not in res.output
    CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "tiny", "--steps", "10"])
    assert made  # a size that fits goes on to the timing (faked here)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_memory_check_leaves_a_missing_gpu_to_builds_message(tmp_path):
    res, out = _train(tmp_path, "--device", "cuda")
    assert res.exit_code == 1 and "torch sees no CUDA device" in res.output and res.exception is not None
    assert "Traceback" not in res.output and not out.exists()


def test_the_activations_are_checked_at_the_datas_time_steps(tmp_path, monkeypatch):
    """arrays declares no time steps: the first check passes, the one after loading sees T and refuses."""
    calls = []

    def available(device="cpu"):
        calls.append(device)
        return (2**40 if len(calls) == 1 else 2**10), "this machine has"

    monkeypatch.setattr(resources, "available_bytes", available)
    res, out = _train(tmp_path)
    assert res.exit_code == 1 and "6 time steps" in " ".join(res.output.split()), res.output
    assert len(calls) == 2 and not out.exists()


def test_an_address_space_limit_lowers_the_available_memory():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (64 << 30, hard))
        got, where = resources.available_bytes()
        assert got is not None and got < 64 << 30
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_a_label_of_a_billion_is_refused_before_a_billion_class_readout(tmp_path, fresh_plugins):
    y = np.arange(12) % 2
    y[3] = 10**9
    res, out = _train(tmp_path, data=_npz(tmp_path / "big.npz", y_train=y))
    assert res.exit_code == 1 and "1,000,000,001 classes" in res.output and "class indices" in res.output, res.output
    assert not out.exists()


# ----------------------------------------------------------------------------------------- degenerate input


def test_a_split_without_time_steps_or_channels_or_with_nan_is_refused():
    from snnkit_core.contract.dataset import ArrayData
    from snnkit_core.engine.data import check_split

    y = torch.arange(4) % 2
    check_split("d", "train", ArrayData(torch.rand(4, 3, 2), y))
    with pytest.raises(DatasetError, match="0 time steps and 2 channels"):
        check_split("d", "train", ArrayData(torch.rand(4, 0, 2), y))
    with pytest.raises(DatasetError, match="3 time steps and 0 channels"):
        check_split("d", "test", ArrayData(torch.rand(4, 3, 0), y))
    for bad in (float("nan"), float("inf")):
        x = torch.rand(2000, 3, 2)
        x[1500, 1, 0] = bad
        with pytest.raises(DatasetError, match=r"hold NaN or infinite values \(among examples 1024..1999"):
            check_split("d", "test", ArrayData(x, torch.arange(2000) % 2))
    check_split("d", "train", ArrayData(torch.full((4, 3, 2), 255, dtype=torch.uint8), y))  # integers: no scan


def test_a_one_class_training_set_is_refused(tmp_path, fresh_plugins):
    res, out = _train(tmp_path, data=_npz(tmp_path / "one.npz", y_train=np.zeros(12, np.int64),
                                          y_test=np.zeros(6, np.int64)))
    assert res.exit_code == 1 and "at least two classes" in res.output and "100" not in res.output, res.output
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_parameter_must_be_finite(value):
    from snnkit_core.contract.params import Param, resolve_params

    declared = (Param("tau_m", 5.0, "membrane time constant"), Param("steps", 100, "time steps"))
    assert resolve_params("lif", declared, {"tau_m": "8", "steps": 7}) == {"tau_m": 8.0, "steps": 7}
    with pytest.raises(ConfigError, match=rf"lif.tau_m expects a float \(membrane time constant\) that is finite; "
                                          rf"got {value}"):
        resolve_params("lif", declared, {"tau_m": value})


def test_an_audio_file_with_nan_samples_is_named(tmp_path):
    import soundfile as sf

    from snnkit_datasets.audio import read_audio

    wave = np.zeros(2000, np.float32)
    wave[10] = np.nan
    sf.write(tmp_path / "0_x_0.wav", wave, 8000, subtype="FLOAT")
    with pytest.raises(DatasetError, match=r"0_x_0.wav holds NaN or infinite samples"):
        read_audio(tmp_path / "0_x_0.wav", 8000)


# ----------------------------------------------------------------------------------------- plugins


def test_the_guard_turns_os_exit_into_systemexit_and_restores_it():
    from snnkit_core.contract.plugins import guard

    real = os._exit
    with pytest.raises(SystemExit, match=r"os._exit\(3\)"), guard():
        os._exit(3)
    assert os._exit is real


def test_the_guard_tells_the_users_ctrl_c_from_a_plugins_keyboardinterrupt():
    from snnkit_core.contract.plugins import guard

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), guard() as pressed:
        raise KeyboardInterrupt("raised by a plugin")
    assert pressed == []
    with pytest.raises(KeyboardInterrupt), guard() as pressed:
        os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends it on Ctrl-C
        time.sleep(5)  # the handler runs (and raises) before this returns
    assert pressed == [True] and signal.getsignal(signal.SIGINT) is before


def test_a_plugin_that_raises_keyboardinterrupt_at_import_is_named(fresh_plugins, monkeypatch):
    class EP:
        name, dist = "kbd-plugin", None

        def load(self):
            raise KeyboardInterrupt("at import")

    monkeypatch.setattr(fresh_plugins, "entry_points", lambda group: [EP()])
    infos = {p.name: p for p in fresh_plugins.load_plugins()}
    assert infos["kbd-plugin"].error.startswith("KeyboardInterrupt: at import")


def test_a_plugin_cannot_replace_a_built_in_or_an_earlier_plugins_command():
    from snnkit_cli.main import BUILTINS, keep_commands

    group = click.Group(commands=dict(BUILTINS))
    group.add_command(click.Command("mine", callback=lambda: None))
    before = dict(group.commands)
    group.add_command(click.Command("train", callback=lambda: None))
    group.add_command(click.Command("mine", callback=lambda: None))
    del group.commands["eval"]
    problems = keep_commands(group, before, "plugin 'hijack'")
    assert group.commands["train"] is BUILTINS["train"] and group.commands["eval"] is BUILTINS["eval"]
    assert group.commands["mine"] is before["mine"]
    assert len(problems) == 3 and all("plugin 'hijack' replaced the" in p for p in problems)
    assert any("built-in command 'train'" in p for p in problems)
    assert any("earlier plugin's command 'mine'" in p for p in problems)


@pytest.mark.parametrize("name, kind, message", [
    ("lif", "neuron", "neuron 'lif' is already provided by plugin 'snnkit-neurons'"),
    ("bptt", "rule", "rule 'bptt' is already provided by plugin 'snnkit-rules'"),
    ("neurons", "rule", "a distribution named snnkit-neurons"),
    ("core", "neuron", "a package named snnkit_core"),
])
def test_plugin_new_refuses_a_name_that_clashes_once_installed(tmp_path, name, kind, message):
    res = CliRunner().invoke(cli, ["plugin", "new", name, "--kind", kind, "--out", str(tmp_path / "p")])
    assert res.exit_code == 1 and message in " ".join(res.output.split()), res.output
    assert not (tmp_path / "p").exists()


def test_a_sweep_is_counted_before_its_grid_is_expanded(tmp_path):
    values = "[" + ", ".join(str(v) for v in range(1, 101)) + "]"
    grid = "\n".join(f"{k} = {values}" for k in ("epochs", "batch_size", "limit", "neuron.tau_m", "neuron.v_th"))
    f = tmp_path / "s.toml"
    f.write_text(f'seeds = 2\n[base]\ndataset = "arrays"\nhidden = [8, 8, 8]\n[grid]\n{grid}\n')
    res = CliRunner().invoke(cli, ["sweep", str(f), "--out", str(tmp_path / "sw"), "--dry-run"])
    assert res.exit_code == 1 and "asks for 20,000,000,000 runs; at most 10,000" in " ".join(res.output.split())
    f.write_text("seeds = 1001\n[base]\nhidden = [8, 8, 8]\n[grid]\nepochs = [1]\n")
    res = CliRunner().invoke(cli, ["sweep", str(f), "--out", str(tmp_path / "sw"), "--dry-run"])
    assert res.exit_code == 1 and "seeds = 1001 asks for 1,001 runs; at most 1,000" in " ".join(res.output.split())
