"""Run directories (issue 13): one owner, no foreign folders, crash consistency at every write, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from snnkit.run import make_unique_dir
from snnkit_core.contract.atomic import FAULT_EXIT
from snnkit_core.contract.errors import CheckpointError, DivergedError, RunDirError
from snnkit_core.engine import rundir
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.training import train

REPO = Path(__file__).resolve().parents[1]


def _cfg(**kw):
    base = dict(neuron="lif", conn="srsc", rules=("bptt",), dataset="tiny", hidden=(8, 8, 8), epochs=3, batch_size=16,
                device="cpu")
    base.update(kw)
    return TrainConfig(**base)


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import torch
    torch.set_num_threads(1)
    from snnkit_core.contract import plugins
    from tests.fakeplugin import FakePlugin
    plugins.register_plugin(FakePlugin(), name="snnkit-fake")
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import train
    cfg = TrainConfig(neuron="lif", conn="srsc", rules=("bptt",), dataset="tiny", hidden=(8, 8, 8), epochs=3,
                      batch_size=16, device="cpu")
    list(train(cfg, sys.argv[1]))
    """
)


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows


# before the first checkpoint; between epoch 2's metrics line and its checkpoint (the line the old order lost);
# with a half-written temporary checkpoint on disk. tests/reliability_sweep.py covers checkpoint:1, status:1 too.
@pytest.mark.parametrize("point", ["manifest", "metrics:2", "checkpoint-tmp:2"])
def test_a_kill_at_any_write_resumes_to_the_uninterrupted_result(fake, tmp_path, point):
    ref = tmp_path / "ref"
    list(train(_cfg(), ref))
    run = tmp_path / "killed"
    env = dict(os.environ, SNNKIT_FAULT_AT=point, OMP_NUM_THREADS="1",
               SNNKIT_LOAD_PLUGINS="snnkit-neurons,snnkit-connectivity,snnkit-rules")
    res = subprocess.run([sys.executable, "-c", _CHILD.format(repo=str(REPO)), str(run)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == FAULT_EXIT, res.stderr
    assert rundir.RunDir(run).status()["state"] in ("killed", "finished")
    if (run / "checkpoint.pt").exists():
        list(train(_cfg(), run, resume=True))
    else:  # killed before the first epoch ended: the same --out starts over
        list(train(_cfg(), run))
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    assert _metrics(run) == _metrics(ref)  # every epoch once, same numbers
    a = torch.load(ref / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_a_torn_last_metrics_line_is_dropped_on_resume(fake, tmp_path):
    run = tmp_path / "r"
    gen = train(_cfg(), run)
    next(gen)
    gen.close()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "train_lo')  # a crash in the middle of an append
    list(train(_cfg(), run, resume=True))
    assert [r["epoch"] for r in _metrics(run)] == [1, 2, 3]


def test_a_second_process_cannot_write_into_a_locked_run_and_a_dead_holders_lock_is_stale(fake, tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[2]); from snnkit_core.engine import "
                               "rundir; "
         "rundir.RunDir(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(run), str(REPO)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"in use by process {holder.pid}"):
            list(train(_cfg(epochs=1), run))
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert rundir.RunDir(run).holder() is None
    assert rundir.RunDir(run).acquire() == holder.pid  # the dead process's lock is detected as stale and taken over
    rundir.RunDir(run).release()
    list(train(_cfg(epochs=1), run))
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_status_reports_a_dead_running_process_as_killed(tmp_path):
    (tmp_path / "status.json").write_text(
        json.dumps({"state": "running", "pid": 2**22 + 7, "message": "", "updated": ""})
    )
    assert rundir.RunDir(tmp_path).status()["state"] == "killed"
    (tmp_path / "status.json").unlink()
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    assert rundir.RunDir(tmp_path).status(epochs=2)["state"] == "finished"
    assert rundir.RunDir(tmp_path).status(epochs=3)["state"] == "killed"


def test_default_run_names_are_unique_within_one_second(tmp_path):
    names = {make_unique_dir(tmp_path, "20260101-000000-x") for _ in range(3)}
    assert len(names) == 3 and all(p.is_dir() for p in names)


def test_cli_refuses_a_foreign_folder_and_loses_nothing(fake, tmp_path):
    from snnkit_cli.main import cli

    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.toml").write_text("my = 'own file'\n")
    res = CliRunner().invoke(
        cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out", str(out)]
    )
    assert res.exit_code == 1 and "not a snnkit run" in res.output and "Traceback" not in res.output, res.output
    assert "snnkit train" not in res.output  # no header for a refused run
    assert sorted(p.name for p in out.iterdir()) == ["config.toml"] and "own file" in (out / "config.toml").read_text()


def test_cli_default_run_directories_do_not_collide(fake, tmp_path, monkeypatch):
    from snnkit_cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda *a: "20260101-000000")  # both runs "in the same second"
    for _ in range(2):
        res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--quiet"])
        assert res.exit_code == 0, res.output
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and runs[1] == runs[0] + "-2"
    for r in runs:
        assert len(_metrics(tmp_path / "runs" / r)) == 1


def test_cli_unwritable_out_fails_before_data_loading(fake, tmp_path):
    from snnkit_cli.main import cli

    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--epochs", "1", "--out", str(blocker / "run")])
    assert res.exit_code == 1 and "is a file" in res.output and "Traceback" not in res.output, res.output


def test_resume_of_a_finished_run_says_it_is_complete(fake, tmp_path):
    from snnkit_cli.main import cli

    run = tmp_path / "r"
    list(train(_cfg(epochs=1), run))
    res = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert res.exit_code == 0 and "is complete" in res.output and "--init-from" in res.output, res.output


@pytest.mark.parametrize("damage, message", [
    (lambda ck: ck.pop("model"), "lacks 'model'"),
    (lambda ck: ck["model"].update({k: torch.zeros(3) for k in ck["model"]}), "does not fit the network"),
])
def test_resume_and_eval_of_a_checkpoint_that_loads_but_does_not_fit(fake, tmp_path, damage, message):
    from snnkit_cli.main import cli

    run = tmp_path / "r"
    gen = train(_cfg(), run)
    next(gen)
    gen.close()
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    damage(ck)
    torch.save(ck, run / "checkpoint.pt")
    for args in (["train", "--resume", str(run)], ["eval", str(run), "--checkpoint", "last"]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 1 and message in res.output and "checkpoint.pt" in res.output, res.output
        assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)


def test_resume_after_config_toml_was_edited_names_the_change(fake, tmp_path):
    run = tmp_path / "r"
    gen = train(_cfg(), run)
    next(gen)
    gen.close()
    text = (run / "config.toml").read_text().replace("hidden = [8, 8, 8]", "hidden = [8, 16, 8]")
    (run / "config.toml").write_text(text)
    with pytest.raises(CheckpointError, match=r"was edited.*hidden.*--init-from"):
        list(train(TrainConfig.from_toml(run / "config.toml"), run, resume=True))


def test_divergence_stops_with_the_last_good_checkpoint_and_init_from_recovers(fake, tmp_path):
    from snnkit_cli.main import cli

    run = tmp_path / "r"
    list(train(_cfg(epochs=1), run))
    good = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    # a new run from those weights at an absurd learning rate: the loss explodes without becoming NaN
    bad = tmp_path / "bad"
    with pytest.raises(DivergedError, match="diverged"):
        list(train(_cfg(epochs=3, lr=1e12, init_from=str(run)), bad))
    assert json.loads((bad / "status.json").read_text())["state"] == "diverged"
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--lr", "1e30",
                                   "--out", str(tmp_path / "cli")])
    assert res.exit_code == 1 and "diverged" in res.output and "Traceback" not in res.output, res.output
    # --init-from: a new run whose starting weights are the old run's
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--lr", "1e-9",
                                   "--init-from", str(run), "--out", str(tmp_path / "ft"), "--quiet"])
    assert res.exit_code == 0, res.output
    tuned = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.allclose(good[k], tuned[k], atol=1e-5) for k in good)
    assert f'init_from = "{run}"' in (tmp_path / "ft" / "config.toml").read_text()
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,16,8", "--epochs", "1",
                                   "--init-from", str(run), "--out", str(tmp_path / "misfit")])
    assert res.exit_code == 1 and "do not fit" in res.output and not (tmp_path / "misfit").exists(), res.output


def test_a_damaged_metrics_line_is_treated_alike_by_runs_eval_plot_and_resume(fake, tmp_path):
    """One policy for a damaged metrics line: every command skips it, says so in one line, and works; --resume then
    rewrites metrics.jsonl (and the files derived from it) from the checkpoint."""
    pytest.importorskip("matplotlib")
    from snnkit_cli.main import cli

    run = tmp_path / "r"
    gen = train(_cfg(epochs=2, val_fraction=0.25), run)
    next(gen)
    gen.close()  # one finished epoch of two: resumable
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_lo\n' + "\n".join(lines) + "\n")  # damaged first line
    assert rundir.RunDir(run).metrics() == [json.loads(lines[0])]
    runner = CliRunner()
    outputs = {}
    for name, args in {"runs": ["runs", str(tmp_path)], "eval": ["eval", str(run), "--no-write"],
                       "plot": ["plot", str(run), "--metrics-only"],
                       "resume": ["train", "--resume", str(run), "--quiet"]}.items():
        res = runner.invoke(cli, args)
        assert res.exit_code == 0, (name, res.output)
        assert "Traceback" not in res.output
        assert "skipped damaged line(s) 1" in res.output, (name, res.output)
        outputs[name] = res.output
    assert "1/2" in outputs["runs"]  # the listing counted the one good record
    assert [r["epoch"] for r in _metrics(run)] == [1, 2]  # repaired from the checkpoint and continued
    assert rundir.RunDir(run).metrics() and not rundir.RunDir(run).damaged
    assert json.loads((run / "summary.json").read_text())["epochs_done"] == 2
