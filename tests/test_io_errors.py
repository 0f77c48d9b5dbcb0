"""Every error path of the CLI ends in one line naming the cause and the fix: injected I/O failures
(``SNNKIT_FAULT_AT=FILE:N:ERRNO``), a failing stdout, read-only runs, unreadable configs, out-of-range integers and
plugins that break their contract."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from snnkit_cli import errors
from snnkit_cli.main import cli
from snnkit_core.contract import atomic
from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.config import TrainConfig

ARGS = ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--quiet"]


@pytest.fixture
def fault(monkeypatch):
    """``fault("FILE:N:ERRNO")`` arms one injected failure for this test (the counts start afresh)."""
    monkeypatch.setattr(atomic, "_fault_counts", {})
    return lambda spec: monkeypatch.setenv(atomic.FAULT_ENV, spec)


def _one_line(res) -> str:
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
    return res.output.strip().splitlines()[-1]


def test_an_errno_fault_raises_before_anything_is_written(tmp_path, fault):
    target = tmp_path / "f.json"
    target.write_text("old")
    fault("f.json:2:ENOSPC")
    atomic.atomic_write(target, b"new")  # the first write passes
    with pytest.raises(OSError) as info:
        atomic.atomic_write(target, b"newer")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    target.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError):
        atomic.atomic_write(target, b"new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_the_message_names_the_file_the_errno_and_the_fix(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text("{}")
    (run / "checkpoint.pt").write_bytes(b"x")
    exc = OSError(errno.ENOSPC, "No space left on device", str(run / "summary.json.tmp123"))
    text = errors.os_error_message(exc, "train")
    assert f"{run / 'summary.json'}: No space left on device (ENOSPC)" in text and "tmp123" not in text
    assert "free space" in text and f"snnkit train --resume {run}" in text
    assert "--resume" not in errors.os_error_message(exc, "eval")
    assert "local disk" in errors.os_error_message(OSError(errno.ENOLCK, "No locks available", "x/.lock"))


@pytest.mark.parametrize("spec, words", [("checkpoint.pt:1:EIO", "(EIO)"), ("lock:1:ENOLCK", "(ENOLCK)"),
                                         ("metrics.csv:2:ENOSPC", "--resume")])
def test_train_io_failures_are_one_line_and_the_run_resumes(fake, tmp_path, fault, monkeypatch, spec, words):
    out = tmp_path / "r"
    fault(spec)
    res = CliRunner().invoke(cli, [*ARGS, "--epochs", "2", "--out", str(out)])
    assert res.exit_code == 1 and words in _one_line(res) and "I/O failed on" in res.output, res.output
    monkeypatch.delenv(atomic.FAULT_ENV)
    if (out / "checkpoint.pt").exists():
        res = CliRunner().invoke(cli, ["train", "--resume", str(out), "--quiet"])
        assert res.exit_code == 0, res.output
        assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_a_closed_pipe_on_stdout_ends_quietly():
    with pytest.raises(SystemExit) as info:
        errors.handle_fatal(BrokenPipeError(errno.EPIPE, "Broken pipe"), "runs")
    assert info.value.code == 141


def test_an_unknown_error_stays_a_traceback():
    with pytest.raises(KeyError):  # a bug in snnkit is not dressed up as the user's problem
        errors.handle_fatal(KeyError("x"), "train")


def test_a_read_only_run_is_evaluated_plotted_and_exported_elsewhere(fake, tmp_path, fault):
    run = tmp_path / "r"
    assert CliRunner().invoke(cli, [*ARGS, "--epochs", "1", "--out", str(run)]).exit_code == 0
    fault("test.json:1:EROFS")
    res = CliRunner().invoke(cli, ["eval", str(run), "--split", "test"])
    assert res.exit_code == 0 and "test accuracy" in res.output and "not recorded" in res.output, res.output
    assert not (run / "eval" / "test.json").exists()
    fault("curves.png:1:EROFS")
    res = CliRunner().invoke(cli, ["plot", str(run), "--metrics-only"])
    assert res.exit_code == 1 and "give --out DIR" in _one_line(res), res.output
    res = CliRunner().invoke(cli, ["plot", str(run), "--metrics-only", "--out", str(tmp_path / "p")])
    assert res.exit_code == 0 and (tmp_path / "p" / "curves.png").exists(), res.output


def test_a_latin1_config_file_is_refused_naming_utf8(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes("[train]\n# r\xe9glages\nepochs = 2\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8") as info:
        TrainConfig.from_toml(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("key, value", [("seed", 2**63), ("seed", -1), ("epochs", 10**20)])
def test_out_of_range_integers_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"{key} must be an integer"):
        TrainConfig(**{key: value})


def test_a_folder_named_like_a_data_file_is_named(tmp_path):
    (tmp_path / "d.npz").mkdir()
    res = CliRunner().invoke(cli, ["train", "--dataset", "arrays", "--data-dir", str(tmp_path / "d.npz"), "--quiet",
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "is a folder, not a .npz file" in _one_line(res), res.output


class _Raises:
    """A plugin whose neuron's constructor raises (a contract violation the CLI must pin on the plugin)."""

    from snnkit_core import hookimpl

    @hookimpl
    def register_neurons(self, register):
        from .fakeplugin import ToyNeuron

        class Broken(ToyNeuron):
            name = "broken-toy"

            def __init__(self, *a, **k):
                raise ValueError("cannot build me")

        register(Broken)


def test_a_plugin_breaking_its_contract_is_named(fake, tmp_path):
    fake.register_plugin(_Raises(), name="snnkit-raises")
    try:
        res = CliRunner().invoke(cli, [*ARGS, "--neuron", "broken-toy", "--rule", "nan-rule", "--epochs", "1", "--out",
                                       str(tmp_path / "r")])
    finally:
        fake.unregister_plugin("snnkit-raises")
    line = _one_line(res)
    assert res.exit_code == 1 and "plugin 'snnkit-raises' broke its contract" in line, res.output
    assert "its constructor" in line and "cannot build me" in line and "not snnkit" in line


class _WrongReturns:
    """A plugin whose neuron's step returns one neuron's outputs for a layer of N, and whose rule's train_step
    returns None: each fails later, in snnkit's code, which must still name the plugin and the promise."""

    from snnkit_core import hookimpl

    @hookimpl
    def register_neurons(self, register):
        from .fakeplugin import ToyNeuron

        class Narrow(ToyNeuron):
            name = "narrow-toy"

            def step(self, current, state):
                y, s, state = super().step(current, state)
                return y[..., :1], s[..., :1], state

        register(Narrow)

    @hookimpl
    def register_rules(self, register):
        from .fakeplugin import NaNRule

        class Nothing(NaNRule):
            name = "returns-nothing"

            def train_step(self, network, batch, optimizer):
                return None

        register(Nothing)


@pytest.mark.parametrize("args, promise", [
    (["--neuron", "narrow-toy", "--rule", "nan-rule", "--conn", "ff"], "shaped (B, N)"),
    (["--rule", "returns-nothing"], "train_step returns (loss, logits)"),
])
def test_a_wrong_return_is_pinned_on_the_plugin_with_its_promise(fake, tmp_path, args, promise):
    fake.register_plugin(_WrongReturns(), name="snnkit-wrong")
    try:
        res = CliRunner().invoke(cli, [*ARGS, *args, "--epochs", "1", "--out", str(tmp_path / "r")])
    finally:
        fake.unregister_plugin("snnkit-wrong")
    line = _one_line(res)
    assert res.exit_code == 1 and "plugin 'snnkit-wrong' broke its contract" in line and promise in line, res.output


def _reader_prefix() -> list[str] | None:
    """How to run a command as a user who may not write the run: nobody (as root, through setpriv), else oneself."""
    import shutil

    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if shutil.which("setpriv") else None


@pytest.mark.slow
def test_a_really_read_only_run_is_evaluated_plotted_and_exported(tmp_path):
    import shutil
    import subprocess
    import sys
    import tempfile

    import numpy as np

    prefix = _reader_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv: no user to read the run without write access")
    base = tempfile.mkdtemp(prefix="snnkit-ro-")
    try:
        os.chmod(base, 0o755)
        y = np.arange(16) % 2
        x = np.random.default_rng(0).random((16, 10, 4), dtype=np.float32) + y[:, None, None]
        np.savez(f"{base}/d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
        run = f"{base}/run"
        res = CliRunner().invoke(cli, ["train", "--dataset", "arrays", "--data-dir", f"{base}/d.npz", "--hidden",
                                       "8,8,8", "--epochs", "1", "--quiet", "--out", run])
        assert res.exit_code == 0, res.output
        for p in [base, *[str(q) for q in Path(run).rglob("*")], run]:
            os.chmod(p, os.stat(p).st_mode & ~0o222)  # nobody writes here; root could, so the reader is nobody
        env = dict(os.environ, HOME=base, SNNKIT_CACHE=f"{base}/no-cache", OMP_NUM_THREADS="1")
        probe = subprocess.run([*prefix, sys.executable, "-c", "import snnkit_cli"], env=env, capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"the reader cannot import snnkit here: {probe.stderr.decode()[-200:]}")
        outs = {}
        for name, args in {"eval": ["eval", run, "--split", "test"], "plot": ["plot", run, "--metrics-only"],
                           "export": ["export", run]}.items():
            r = subprocess.run([*prefix, sys.executable, "-m", "snnkit_cli", *args], env=env, capture_output=True,
                               text=True, timeout=300)
            outs[name] = (r.returncode, r.stdout + r.stderr)
            assert "Traceback" not in outs[name][1], outs[name][1]
        assert outs["eval"][0] == 0 and "not recorded" in outs["eval"][1], outs["eval"]
        assert outs["plot"][0] == 1 and "give --out DIR" in outs["plot"][1], outs["plot"]
        assert outs["export"][0] == 1 and "choose another --out FILE" in outs["export"][1], outs["export"]
    finally:
        for p in Path(base).rglob("*"):
            os.chmod(p, 0o755)
        os.chmod(base, 0o755)
        shutil.rmtree(base, ignore_errors=True)
