"""`--threads` (train, eval, bench), `bench --steps/--batch`, and the process settings behind them."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from snnkit_cli.bench import WORKLOADS, resize
from snnkit_cli.host import keep_freed_memory, set_threads
from snnkit_cli.main import cli
from snnkit_core.contract.errors import ConfigError

from .fakeplugin import FakePlugin


@pytest.fixture
def runner(fresh_plugins):
    fresh_plugins.register_plugin(FakePlugin(), name="snnkit-fake")
    yield CliRunner()
    fresh_plugins.unregister_plugin("snnkit-fake")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bench_steps_batch_threads_and_fraction(restore_threads):
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "tiny", "--steps", "7", "--batch", "3",
                                   "--threads", "1", "--repeats", "1", "--warmup", "0", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["meta"]["threads"] == 1 and torch.get_num_threads() == 1
    (rec,) = data["results"]
    assert (rec["steps"], rec["batch"]) == (7, 3)
    for p in rec["paths"].values():
        assert p["fraction_of_bound"] == pytest.approx(rec["lower_bound_ms"] / p["median_ms"])


def test_bench_table_prints_the_shape_and_fraction(restore_threads):
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "tiny", "--steps", "6", "--batch", "2",
                                   "--repeats", "1", "--warmup", "0"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "6 x 2" in res.output and "fraction of bound" in res.output


@pytest.mark.parametrize("args", [["bench", "--threads", "0"], ["bench", "--steps", "0"], ["bench", "--batch", "-1"],
                                  ["train", "--threads", "0"], ["eval", ".", "--threads", "x"]])
def test_bad_values_fail_cleanly(args):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output


def test_train_records_threads_and_eval_takes_them(runner, tmp_path, restore_threads):
    run = tmp_path / "run"
    res = runner.invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out", str(run),
                              "--quiet", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "manifest.json").read_text())["threads"] == 1
    res = runner.invoke(cli, ["eval", str(run), "--threads", "1"])
    assert res.exit_code == 0 and "accuracy" in res.output, res.output


def test_set_threads_and_resize_validate(restore_threads):
    assert set_threads(None) == torch.get_num_threads()
    assert set_threads(1) == 1
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match="--threads"):
            set_threads(bad)
    w = WORKLOADS["tiny"][0]
    assert (resize(w, 9, None).steps, resize(w, 9, None).batch) == (9, w.batch)
    assert resize(w).steps == w.steps
    with pytest.raises(ConfigError, match="--batch"):
        resize(w, None, 0)


def test_keep_freed_memory_applies_on_glibc():
    import platform

    applied = keep_freed_memory()
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
