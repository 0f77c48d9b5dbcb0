"""The evaluation protocol: validation split, best-on-validation checkpoint, eval records, seeds, `snnkit runs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnkit_cli.evaluate import evaluate_splits
from snnkit_cli.main import cli
from snnkit_cli.runs import describe_run, list_runs, mean_sd, parse_seeds
from snnkit_core.contract.errors import ConfigError, SnnkitError
from snnkit_core.engine import rundir
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.data import stratified_split
from snnkit_core.engine.training import train


def _cfg(**kw):
    base = dict(neuron="lif", conn="srsc", rules=("bptt",), dataset="tiny", hidden=(8, 8, 8), epochs=3, batch_size=16,
                device="cpu", val_fraction=0.25)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def runner():
    return CliRunner()


# ------------------------------------------------------------------------------------------- split


def test_stratified_split_keeps_every_class_share_and_is_seeded():
    y = torch.tensor([0] * 40 + [1] * 20 + [2] * 3 + [3])
    keep, val = stratified_split(y, 0.1, seed=5)
    assert sorted(keep.tolist() + val.tolist()) == list(range(len(y)))  # a partition
    counts = torch.bincount(y[val], minlength=4).tolist()
    assert counts == [4, 2, 1, 0]  # round(0.1 n_c), at least one when n_c >= 2, never a class's only example
    assert torch.equal(val, stratified_split(y, 0.1, seed=5)[1])
    assert not torch.equal(val, stratified_split(y, 0.1, seed=6)[1])
    assert len(stratified_split(y, 0.0, seed=0)[1]) == 0
    with pytest.raises(ConfigError, match="val_fraction"):
        stratified_split(y, 1.0, seed=0)


def test_val_fraction_is_validated_in_the_config():
    with pytest.raises(ConfigError, match="val_fraction"):
        TrainConfig(val_fraction=-0.1)
    with pytest.raises(ConfigError, match="val_fraction"):
        TrainConfig(val_fraction=1.0)


# ---------------------------------------------------------------------------------- best + summary


def test_best_on_validation_is_kept_and_test_is_reported_at_it(fake, tmp_path):
    run = tmp_path / "run"
    recs = list(train(_cfg(epochs=4), run))
    rows = rundir.RunDir(run).metrics()
    assert all("val_loss" in r and "val_accuracy" in r for r in rows)
    assert [r.val_accuracy for r in recs] == [r["val_accuracy"] for r in rows]
    man = json.loads((run / "manifest.json").read_text())["validation"]
    assert man["source"] == "carved from train" and man["fraction"] == 0.25 and man["seed"] == 0
    assert man["counts"]["train"] + man["counts"]["val"] == 64 and man["counts"]["test"] == 64
    from tests.fakeplugin import TinyDataset

    per_class = torch.bincount(TinyDataset().load("train").y).tolist()
    assert (
        man["val_per_class"] == [int(0.25 * n + 0.5) for n in per_class]
        and sum(man["val_per_class"]) == man["counts"]["val"]
    )
    summary = json.loads((run / "summary.json").read_text())
    vals = [r["val_accuracy"] for r in rows]
    best = vals.index(max(vals))  # the earliest of the best
    assert summary == {"best_epoch": best + 1, "best_val_accuracy": vals[best],
                       "test_accuracy_at_best": rows[best]["test_accuracy"],
                       "final_test_accuracy": rows[-1]["test_accuracy"], "epochs_done": 4}
    # best.pt holds the weights of that epoch: evaluating them gives its validation and test accuracy again
    res = evaluate_splits(run, "all", checkpoint="best")
    assert res["checkpoint"] == "best" and res["epoch"] == best + 1
    assert res["splits"]["val"]["accuracy"] == pytest.approx(vals[best])
    assert res["splits"]["test"]["accuracy"] == pytest.approx(rows[best]["test_accuracy"])
    last = evaluate_splits(run, ["test"], checkpoint="last", write=False)
    assert last["epoch"] == 4 and last["splits"]["test"]["accuracy"] == pytest.approx(rows[-1]["test_accuracy"])


def test_the_choice_never_looks_at_test(fake, tmp_path, monkeypatch):
    """Scramble the test labels: the best epoch and best.pt stay exactly the same."""
    from tests.fakeplugin import TinyDataset

    a = list(train(_cfg(epochs=3, seed=1), tmp_path / "a"))
    orig = TinyDataset.load

    def scrambled(self, split):
        d = orig(self, split)
        return d if split != "test" else type(d)(d.x, 1 - d.y)

    monkeypatch.setattr(TinyDataset, "load", scrambled)
    b = list(train(_cfg(epochs=3, seed=1), tmp_path / "b"))
    assert [r.test_accuracy for r in a] != [r.test_accuracy for r in b]
    sa, sb = (json.loads((tmp_path / x / "summary.json").read_text()) for x in "ab")
    assert sa["best_epoch"] == sb["best_epoch"]
    wa, wb = (torch.load(tmp_path / x / "best.pt", weights_only=True)["model"] for x in "ab")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_no_validation_when_the_fraction_is_zero(fake, tmp_path):
    run = tmp_path / "run"
    list(train(_cfg(epochs=2, val_fraction=0.0), run))
    rows = rundir.RunDir(run).metrics()
    assert all("val_accuracy" not in r for r in rows) and not (run / "best.pt").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] is None and summary["final_test_accuracy"] == rows[-1]["test_accuracy"]
    with pytest.raises(SnnkitError, match="without validation"):
        evaluate_splits(run, ["val"])
    assert evaluate_splits(run, ["test"])["checkpoint"] == "last"  # no best.pt: the last checkpoint


def test_resume_keeps_the_best_of_the_epochs_before_the_kill(fake, tmp_path):
    list(train(_cfg(epochs=3), tmp_path / "a"))
    gen = train(_cfg(epochs=3), tmp_path / "b")
    next(gen)
    next(gen)
    gen.close()
    list(train(_cfg(epochs=3), tmp_path / "b", resume=True))
    sa, sb = (json.loads((tmp_path / x / "summary.json").read_text()) for x in "ab")
    assert sa == sb
    wa, wb = (torch.load(tmp_path / x / "best.pt", weights_only=True)["model"] for x in "ab")
    assert all(torch.allclose(wa[k], wb[k]) for k in wa)


def test_a_datasets_own_val_split_is_used(fresh_plugins, tmp_path):
    g = np.random.default_rng(0)
    def split(n):
        y = g.integers(0, 2, n)
        return (g.random((n, 6, 4)) + y[:, None, None]).astype(np.float32), y
    (xtr, ytr), (xv, yv), (xte, yte) = split(40), split(12), split(20)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_val=xv, y_val=yv, x_test=xte, y_test=yte)
    cfg = TrainConfig(
        dataset="arrays", data_dir=str(path), hidden=(8,), conn="ff", epochs=1, device="cpu", batch_size=8
    )
    run = tmp_path / "run"
    rec = next(train(cfg, run))
    man = json.loads((run / "manifest.json").read_text())["validation"]
    assert man["source"] == "dataset" and man["counts"] == {"train": 40, "val": 12, "test": 20}
    assert rec.val_accuracy is not None
    res = evaluate_splits(run, ["val"])
    assert res["splits"]["val"]["n"] == 12 and res["splits"]["val"]["accuracy"] == pytest.approx(rec.val_accuracy)


def test_a_run_from_before_validation_is_read_without_it(fake, tmp_path):
    from snnkit_core.engine.rundir import RunDir

    run = tmp_path / "run"
    list(train(_cfg(epochs=1), run))
    text = "\n".join(ln for ln in (run / "config.toml").read_text().splitlines() if not ln.startswith("val_fraction"))
    (run / "config.toml").write_text(text + "\n")
    assert RunDir(run).config().val_fraction == 0.0


# ---------------------------------------------------------------------------------------------- eval


def test_eval_records_confusion_and_per_class(fake, tmp_path, runner):
    run = tmp_path / "run"
    list(train(_cfg(epochs=1), run))
    res = runner.invoke(cli, ["eval", str(run), "--split", "all"])
    assert res.exit_code == 0, res.output
    assert "confusion" in res.output and "true class" in res.output and "val accuracy" in res.output
    counts = json.loads((run / "manifest.json").read_text())["validation"]["counts"]
    for split in ("train", "val", "test"):
        n = counts[split]
        rec = json.loads((run / "eval" / f"{split}.json").read_text())
        cm = torch.tensor(rec["confusion"])
        assert rec["split"] == split and rec["n"] == n == int(cm.sum()) and rec["classes"] == ["0", "1"]
        assert rec["accuracy"] == pytest.approx(float(cm.trace()) / n)
        assert rec["per_class_accuracy"] == pytest.approx([float(cm[i, i] / cm[i].sum()) for i in range(2)])
        assert set(rec) >= {"split", "n", "loss", "accuracy", "classes", "per_class_accuracy", "confusion"}
    y = json.loads((run / "eval" / "test.json").read_text())
    from tests.fakeplugin import TinyDataset

    counts = torch.bincount(TinyDataset().load("test").y, minlength=2).tolist()
    assert [sum(r) for r in y["confusion"]] == counts  # rows are the true classes
    res = runner.invoke(cli, ["eval", str(run), "--split", "nope"])
    assert res.exit_code == 1 and "not 'nope'" in res.output and "Traceback" not in res.output


def test_eval_over_a_folder_of_runs(fake, tmp_path, runner):
    for s in (0, 1):
        list(train(_cfg(epochs=1, seed=s), tmp_path / "many" / f"seed-{s}"))
    (tmp_path / "many" / "notes").mkdir()
    res = runner.invoke(cli, ["eval", str(tmp_path / "many"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [r["run"].rsplit("/", 1)[-1] for r in out["results"]] == ["seed-0", "seed-1"] and out["failures"] == []
    assert all((tmp_path / "many" / f"seed-{s}" / "eval" / "test.json").exists() for s in (0, 1))
    res = runner.invoke(cli, ["eval", str(tmp_path / "many" / "notes")])
    assert res.exit_code == 1 and "no run directory" in res.output
    # a run that cannot be evaluated (it never finished an epoch) is listed; the others are still evaluated
    (tmp_path / "many" / "seed-9").mkdir()
    for name in ("manifest.json", "config.toml"):  # what a run killed in its first epoch holds
        (tmp_path / "many" / "seed-9" / name).write_text((tmp_path / "many" / "seed-0" / name).read_text())
    res = runner.invoke(cli, ["eval", str(tmp_path / "many"), "--no-write"])
    assert res.exit_code == 1 and "1 of 3 runs could not be evaluated" in res.output
    assert "seed-0: test" in res.output and "seed-1: test" in res.output
    res = runner.invoke(cli, ["eval", str(tmp_path / "many"), "--no-write", "--json"])
    out = json.loads(res.stdout)
    assert res.exit_code == 1 and len(out["results"]) == 2 and len(out["failures"]) == 1
    assert out["failures"][0]["run"].endswith("seed-9") and "no checkpoint.pt" in out["failures"][0]["error"]


# --------------------------------------------------------------------------------------------- seeds


def test_parse_seeds_and_mean_sd():
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("0, 4,2") == [0, 4, 2]
    for bad in ("0", "a", "1,1", "-1,2", ""):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)
    m = mean_sd([0.5, 0.7, 0.9])
    assert m["mean"] == pytest.approx(0.7) and m["sd"] == pytest.approx(0.2) and m["n"] == 3
    assert mean_sd([0.4])["sd"] == 0.0


def test_train_seeds_writes_sibling_runs_and_the_mean(fake, tmp_path, runner):
    out = tmp_path / "multi"
    args = ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "2", "--out", str(out), "--quiet",
            "--seeds", "0,3", "--val-fraction", "0.25"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "seeds.json").read_text())
    assert rep["seeds"] == [0, 3]
    finals = [rundir.RunDir(out / f"seed-{s}").metrics()[-1]["test_accuracy"] for s in (0, 3)]
    assert rep["final_test_accuracy"]["values"] == finals
    assert rep["final_test_accuracy"]["mean"] == pytest.approx(sum(finals) / 2)
    assert rep["test_accuracy_at_best"]["n"] == 2 and "mean ± sd over 2 seeds" in res.output
    assert TrainConfig.from_toml(out / "seed-3" / "config.toml").seed == 3
    res = runner.invoke(cli, args)  # the seed directories are taken: refused before anything trains
    assert res.exit_code == 1 and "already hold runs" in res.output
    res = runner.invoke(
        cli, ["train", "--dataset", "tiny", "--seeds", "2", "--seed", "1", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 1 and "--seeds alone" in res.output


# ---------------------------------------------------------------------------------------------- runs


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_runs_table_and_status(fake, tmp_path, runner):
    root = tmp_path / "runs"
    list(train(_cfg(epochs=2), root / "done"))
    gen = train(_cfg(epochs=3), root / "cut")
    next(gen)
    gen.close()  # one of three epochs, then the generator was closed: interrupted
    list(train(_cfg(epochs=1), root / "crashed"))
    (root / "crashed" / "status.json").write_text(json.dumps({"state": "running", "pid": _dead_pid()}))
    list(train(_cfg(epochs=1), root / "live"))
    (root / "live" / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid()}))
    list(train(_cfg(epochs=1), root / "nan"))
    (root / "nan" / "status.json").write_text(json.dumps({"state": "diverged", "pid": 1, "message": "loss nan"}))
    list(train(_cfg(epochs=2), root / "locked"))
    (root / "locked" / "metrics.jsonl").write_text(
        (root / "locked" / "metrics.jsonl").read_text().splitlines()[0] + "\n{torn"
    )
    (root / "locked" / "status.json").unlink()  # an older run: no status.json, so the lock's holder decides
    rundir.RunDir(root / "locked").acquire()
    (root / "broken").mkdir()
    (root / "broken" / "config.toml").write_text("this is [not toml")  # a run (its manifest) with a damaged config
    (root / "broken" / "manifest.json").write_text((root / "done" / "manifest.json").read_text())
    rows = {r["run"].rsplit("/", 1)[-1]: r for r in list_runs(root)}
    status = {k: r["status"] for k, r in rows.items()}
    rundir.RunDir(root / "locked").release()
    assert status == {"done": "finished", "cut": "interrupted", "crashed": "killed", "live": "running",
                      "nan": "diverged", "locked": "running", "broken": "unreadable"}
    done = rows["done"]
    summary = json.loads((root / "done" / "summary.json").read_text())
    assert (done["neuron"], done["conn"], done["rules"], done["dataset"]) == ("lif", "srsc", ["bptt"], "tiny")
    assert done["epochs_done"] == 2 and done["best_epoch"] == summary["best_epoch"]
    assert done["test_accuracy_at_best"] == summary["test_accuracy_at_best"] and done["seconds_per_epoch"] > 0
    assert rows["locked"]["epochs_done"] == 1  # the torn line is skipped
    res = runner.invoke(cli, ["runs", str(root)])
    assert res.exit_code == 0, res.output
    assert "finished" in res.output and "diverged" in res.output and "unreadable" in res.output
    res = runner.invoke(cli, ["runs", str(root), "--json"])
    assert res.exit_code == 0 and {r["status"] for r in json.loads(res.output)} == set(status.values())
    res = runner.invoke(cli, ["runs", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "does not exist" in res.output
    assert describe_run(root / "done")["status"] == "finished"


def test_val_fraction_option_is_recorded_and_checked(fake, tmp_path, runner):
    run = tmp_path / "r"
    base = ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--quiet"]
    res = runner.invoke(cli, base + ["--out", str(run), "--val-fraction", "0"])
    assert res.exit_code == 0, res.output
    assert TrainConfig.from_toml(run / "config.toml").val_fraction == 0.0
    epoch_lines = [ln for ln in res.output.splitlines() if ln.startswith("epoch ")]
    assert epoch_lines and not any(" val " in ln for ln in epoch_lines) and not (run / "best.pt").exists()
    res = runner.invoke(cli, base + ["--out", str(tmp_path / "s"), "--val-fraction", "1.5"])
    assert res.exit_code == 1 and "val_fraction must be" in res.output and not (tmp_path / "s").exists()
    res = runner.invoke(cli, ["train", "--resume", str(run), "--val-fraction", "0.2"])
    assert res.exit_code == 1 and "--val-fraction" in res.output


def test_eval_set_overrides_dataset_parameters_without_writing(fake, tmp_path, runner):
    run = tmp_path / "run"
    list(train(_cfg(epochs=1), run))
    res = runner.invoke(cli, ["eval", str(run), "--set", "dataset.n=20", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["results"][0]["splits"]["test"]["n"] == 20
    assert not (run / "eval").exists()
    res = runner.invoke(cli, ["eval", str(run), "--set", "neuron.tau_m=3"])
    assert res.exit_code == 1 and "dataset parameters only" in res.output
