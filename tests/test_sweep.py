"""`snnkit sweep` (grid and Optuna search, as ordinary runs, resumed when run again) and `snnkit runs` grouping.

The sweeps train real `snnkit train` processes on the shipped espeak-digits (1 epoch, 40 examples, hidden
8,8,8); the examples are the TOML blocks of docs/sweeps.md, so the documented files are the tested ones."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from snnkit_cli.main import cli
from snnkit_cli.runs import group_runs, mean_sd
from snnkit_cli.sweep import grid_points, load_spec, open_sweep_dir
from snnkit_core.engine import rundir
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.rundir import RunDir
from snnkit_core.engine.training import train

DOC = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"


def doc_toml(n: int) -> str:
    """The n-th ```toml block of docs/sweeps.md."""
    return re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)[n]


def _write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _runs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob(RunDir.CONFIG))


def _stamps(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for r in _runs(out) for p in (r / RunDir.METRICS, r / RunDir.CHECKPOINT)}


def test_a_2x2_sweep_with_two_jobs_writes_four_runs_and_two_rows_and_a_second_call_starts_none(tmp_path):
    spec_file, out = _write(tmp_path, doc_toml(0)), tmp_path / "sweep"
    res = CliRunner().invoke(cli, ["sweep", str(spec_file), "--out", str(out), "--jobs", "2"])
    assert res.exit_code == 0, res.output
    runs = _runs(out)
    assert [str(r.relative_to(out)) for r in runs] == [f"surrogate={s}/seed-{k}" for s in ("sigmoid", "triangle")
                                                       for k in (0, 1)]
    for r in runs:
        assert RunDir(r).status(1)["state"] == "finished"
        assert RunDir(r).config().params["rule.bptt"]["surrogate"] == r.parent.name.split("=")[1]
    summary = json.loads((out / "summary.json").read_text())
    assert [row["settings"] for row in summary["rows"]] == [{"rule.bptt.surrogate": "sigmoid"},
                                                           {"rule.bptt.surrogate": "triangle"}]
    for row in summary["rows"]:  # the row's mean is the mean of its runs' own summaries
        accs = [RunDir(out / row["config"] / f"seed-{k}").read_json(RunDir.SUMMARY)["test_accuracy_at_best"]
                for k in (0, 1)]
        assert row["test_accuracy_at_best"]["mean"] == pytest.approx(sum(accs) / 2)
        assert row["test_accuracy_at_best"]["n"] == 2 and row["best_epoch"]["mean"] == 1
    assert len((out / "summary.csv").read_text().splitlines()) == 3
    assert len([ln for ln in (out / "summary.md").read_text().splitlines() if ln.startswith("| sigmoid")
                or ln.startswith("| triangle")]) == 2
    before = _stamps(out)
    res = CliRunner().invoke(cli, ["sweep", str(spec_file), "--out", str(out), "--jobs", "2"])
    assert res.exit_code == 0, res.output
    assert "0 to start, 0 to resume, 4 finished before" in res.output and "starting" not in res.output
    assert _stamps(out) == before
    grouped = group_runs(out)  # snnkit runs: one row per configuration, the same mean as the sweep's summary
    assert [len(g["runs"]) for g in grouped["groups"]] == [2, 2] and grouped["differ"] == ["rule.bptt.surrogate"]
    assert [g["test_accuracy_at_best"]["mean"] for g in grouped["groups"]] == pytest.approx(
        [row["test_accuracy_at_best"]["mean"] for row in summary["rows"]])


def test_an_interrupted_sweep_resumes_its_partial_run_and_leaves_a_locked_one_alone(tmp_path):
    text = doc_toml(0).replace("epochs = 1", "epochs = 2").replace("seeds = [0, 1]", "seeds = [0]")
    spec_file, out = _write(tmp_path, text), tmp_path / "sweep"
    spec = load_spec(spec_file)
    sigmoid, triangle = grid_points(spec)
    open_sweep_dir(out, spec)
    partial = out / sigmoid.name / "seed-0"
    gen = train(sigmoid.config.evolve(seed=0), partial)
    first = next(gen).to_json()
    gen.close()  # one of two epochs, as when the sweep was killed
    locked = out / triangle.name / "seed-0"
    locked.mkdir(parents=True)
    RunDir(locked).acquire()  # a live process (this one) owns it
    try:
        res = CliRunner().invoke(cli, ["sweep", str(spec_file), "--out", str(out)])
        assert res.exit_code == 1 and "resuming surrogate=sigmoid/seed-0" in res.output
        assert "busy" in res.output and "in use by process" in res.output
        assert sorted(p.name for p in locked.iterdir()) == [rundir.LOCK]  # not touched
    finally:
        RunDir(locked).release()
    records = RunDir(partial).metrics()
    assert [r["epoch"] for r in records] == [1, 2] and records[0] == json.loads(json.dumps(first))
    res = CliRunner().invoke(cli, ["sweep", str(spec_file), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 to start, 0 to resume, 1 finished before" in res.output
    assert RunDir(locked).status(2)["state"] == "finished" and RunDir(partial).metrics() == records


def test_an_optuna_search_of_three_trials_writes_its_study_and_the_best_configuration(tmp_path):
    optuna = pytest.importorskip("optuna")
    spec_file, out = _write(tmp_path, doc_toml(1)), tmp_path / "search"
    res = CliRunner().invoke(cli, ["sweep", str(spec_file), "--out", str(out), "--jobs", "2"])
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name="snnkit-sweep", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    best = study.best_trial
    run = out / "trials" / f"trial-{best.number:04d}" / "seed-0"
    assert best.value == RunDir(run).read_json(RunDir.SUMMARY)["best_val_accuracy"]  # validation, not test
    assert best.value == max(t.value for t in study.trials)
    cfg = TrainConfig.from_toml(out / "best.toml")
    assert cfg.lr == best.params["lr"] and cfg.params["rule.bptt"]["surrogate"] == best.params["rule.bptt.surrogate"]
    assert cfg.epochs == 1 and cfg.hidden == (8, 8, 8)  # [base] kept
    assert str(out / "best.toml") in res.output
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert len(rows) == 3 and all(r["objective"] == pytest.approx(r["best_val_accuracy"]["mean"]) for r in rows)
    res = CliRunner().invoke(cli, ["sweep", str(spec_file), "--out", str(out)])  # the study is complete
    assert res.exit_code == 0 and "starting" not in res.output
    assert len(optuna.load_study(study_name="snnkit-sweep", storage=f"sqlite:///{out / 'study.db'}").trials) == 3


BAD = {
    "unknown key": ("[grid]\nhiden = [[8, 8, 8]]\n", ["unknown key 'hiden'", "Did you mean 'hidden'"]),
    "unknown parameter": ("[grid]\nneuron.tau_mm = [2.0, 4.0]\n", ["no parameter 'tau_mm'", "Did you mean 'tau_m'"]),
    "empty grid": ("[grid]\n", ["[grid] is empty"]),
    "not a list": ("[grid]\nlr = 0.01\n", ["lr must be a non-empty list", "lr = [0.01, ...]"]),
    "empty list": ("[grid]\nconn = []\n", ["conn must be a non-empty list"]),
    "misspelt section": ("[gird]\nlr = [0.1]\n", ["unknown section or key 'gird'", "Did you mean 'grid'"]),
    "neither": ("seeds = 2\n", ["exactly one of [grid]", "neither"]),
    "seed in base": ("[base]\nseed = 3\n[grid]\nlr = [0.1]\n", ["seeds = [0, 1, 2]"]),
    "seed as grid key": ("[grid]\nseed = [1, 2]\n", ["seed cannot be a grid key"]),
    "bad seeds": ("seeds = [1, 1]\n[grid]\nlr = [0.1]\n", ["seeds must be"]),
    "bad base key": ("[base]\nepoch = 1\n[grid]\nlr = [0.1]\n", ["unknown keys 'epoch'", "did you mean 'epochs'"]),
    "bad value": ("[grid]\nepochs = [1, 0]\n", ["configuration epochs=0", "epochs must be an integer >= 1"]),
    "bad range": ("[search]\ntrials = 2\n[search.space]\nlr = { low = 0.1, high = 0.01 }\n", ["low < high"]),
    "no space": ("[search]\ntrials = 2\n", ["[search.space] is missing or empty"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_sweep_file_gets_a_clear_error_and_nothing_is_written(case, tmp_path):
    text, wanted = BAD[case]
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["sweep", str(_write(tmp_path, text)), "--out", str(out)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    for w in wanted:
        assert w in res.output, res.output
    assert not out.exists()


def test_search_without_optuna_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    res = CliRunner().invoke(cli, ["sweep", str(_write(tmp_path, doc_toml(1))), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "pip install snnkit[search]" in res.output and not (tmp_path / "o").exists()


def test_a_sweep_refuses_a_folder_that_is_not_a_sweep_and_a_run_trained_with_another_config(tmp_path):
    spec_file = _write(tmp_path, doc_toml(0))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["sweep", str(spec_file), "--out", str(other)])
    assert res.exit_code == 1 and "not a sweep directory" in res.output
    spec, out = load_spec(spec_file), tmp_path / "sweep"
    point = grid_points(spec)[0]
    open_sweep_dir(out, spec)
    run = out / point.name / "seed-0"
    RunDir(run).path.mkdir(parents=True)
    RunDir(run).write_config(point.config.evolve(seed=0, limit=20))  # as if the sweep file was edited since
    res = CliRunner().invoke(cli, ["sweep", str(spec_file), "--out", str(out)])
    assert res.exit_code == 1 and "limit: 20 -> 40" in res.output and "another --out" in res.output


# ---------------------------------------------------------------------------------------- snnkit runs


def _cfg(**kw):
    base = dict(neuron="lif", conn="srsc", rules=("bptt",), dataset="tiny", hidden=(8, 8, 8), epochs=1, batch_size=16,
                device="cpu", val_fraction=0.25)
    return TrainConfig(**(base | kw))


def test_runs_groups_seeds_into_one_row_with_mean_sd_and_the_settings_that_differ(fake, tmp_path):
    root = tmp_path / "runs"
    wide = _cfg(hidden=(12, 12, 12))
    for name, cfg in {"wide/seed-0": wide, "wide/seed-1": wide.evolve(seed=1), "narrow": _cfg()}.items():
        list(train(cfg, root / name))
    grouped = group_runs(root)
    by_folder = {g["folder"]: g for g in grouped["groups"]}
    assert sorted(by_folder) == ["narrow", "wide"] and grouped["differ"] == ["hidden"]
    wide = by_folder["wide"]
    accs = [RunDir(root / "wide" / f"seed-{k}").read_json(RunDir.SUMMARY)["test_accuracy_at_best"] for k in (0, 1)]
    assert wide["seeds"] == [0, 1] and wide["test_accuracy_at_best"] == mean_sd(accs)
    assert by_folder["narrow"]["test_accuracy_at_best"]["n"] == 1 and wide["status"] == "finished"
    res = CliRunner().invoke(cli, ["runs", str(root)])
    assert res.exit_code == 0, res.output
    words = " ".join(res.output.split())
    assert f"3 runs under {root} in 2 configurations" in words
    assert "hidden=12,12,12" in res.output and "hidden=8,8,8" in res.output
    assert max(len(ln) for ln in res.output.splitlines()) <= 80  # piped: rich's 80 columns, nothing cut off
    res = CliRunner().invoke(cli, ["runs", str(root), "--each"])
    assert res.exit_code == 0 and res.output.count("lif/srsc/bptt tiny") == 3
    assert max(len(ln) for ln in res.output.splitlines()) <= 80


def test_base_may_start_from_a_shipped_preset_with_its_own_keys_over_it(tmp_path):
    from snnkit_cli.presets import get

    text = ('[base]\npreset = "scsr-fsdd"\nepochs = 1\n[base.params.neuron]\ntau_m = 3.0\n[grid]\nlr = [0.001, 0.01]\n')
    spec = load_spec(_write(tmp_path, text))
    preset = get("scsr-fsdd").config()
    assert spec.base.evolve(epochs=preset.epochs, params=preset.params) == preset.evolve(seed=0)
    assert spec.base.epochs == 1 and spec.base.params["neuron"] == {**preset.params["neuron"], "tau_m": 3.0}
    res = CliRunner().invoke(cli, ["sweep", str(_write(tmp_path, text.replace("scsr-fsdd", "scsr-fsd"))),
                                   "--dry-run"])
    assert res.exit_code == 1 and "unknown preset 'scsr-fsd'" in res.output and "scsr-fsdd" in res.output


def test_sigterm_to_a_background_sweep_stops_its_runs_and_they_keep_their_epochs(tmp_path):
    """A batch scheduler's time limit sends SIGTERM; a sweep started in the background has Ctrl-C ignored, which
    its runs inherit. The sweep must still stop every run (each keeps its finished epochs, as after Ctrl-C) and
    exit 130 with the command that continues it, leaving no run behind it."""
    import os
    import signal
    import subprocess
    import time

    text = doc_toml(0).replace("epochs = 1", "epochs = 500").replace("seeds = [0, 1]", "seeds = [0]")
    spec_file, out = _write(tmp_path, text), tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "snnkit_cli", "sweep", str(spec_file), "--out", str(out),
                             "--jobs", "2", "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN), text=True)
    runs = [out / f"surrogate={s}" / "seed-0" for s in ("sigmoid", "triangle")]
    deadline = time.monotonic() + 120
    while not all((r / RunDir.METRICS).is_file() and (r / RunDir.METRICS).read_text().count("\n") >= 1
                  for r in runs):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    pids = [RunDir(r).status(500)["pid"] for r in runs]
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    assert "Continue with: snnkit sweep" in output
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for r in runs:
        epochs = [rec["epoch"] for rec in RunDir(r).metrics()]
        assert epochs and epochs == list(range(1, len(epochs) + 1)) and len(epochs) < 500
        assert RunDir(r).status(500)["state"] != "running"
