"""The training loop, run directories, resume, NaN loss and the compatibility check."""

from __future__ import annotations

import json

import pytest
import torch

from snnkit_core.contract.errors import CheckpointError, ConfigError, IncompatibleError, NaNLossError
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.training import build, train


def _cfg(**kw):
    base = dict(neuron="lif", conn="srsc", rules=("bptt",), dataset="tiny", hidden=(8, 8, 8), epochs=2, batch_size=16,
                device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_run_directory_contents(fake, tmp_path):
    recs = list(train(_cfg(), tmp_path / "run"))
    assert [r.epoch for r in recs] == [1, 2]
    run = tmp_path / "run"
    cfg = TrainConfig.from_toml(run / "config.toml")
    assert cfg == _cfg()
    man = json.loads((run / "manifest.json").read_text())
    assert man["seed"] == 0 and man["torch"] == torch.__version__ and man["dataset"]["name"] == "tiny"
    assert man["plugins"]["snnkit-neurons"]["version"] == "0.2.0"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "train_accuracy", "test_accuracy", "seconds"):
        assert all(key in r for r in rows)
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1
    with pytest.raises(CheckpointError, match="--resume"):
        next(train(_cfg(), run))


def test_resume_continues_exactly(fake, tmp_path):
    full = list(train(_cfg(epochs=3), tmp_path / "a"))
    gen = train(_cfg(epochs=3), tmp_path / "b")
    next(gen)  # one epoch, then the process "dies"
    gen.close()
    resumed = list(train(_cfg(epochs=3), tmp_path / "b", resume=True))
    assert [r.epoch for r in resumed] == [2, 3]
    assert resumed[-1].train_loss == pytest.approx(full[-1].train_loss, rel=1e-6)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k]) for k in a)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_corrupt_checkpoint_is_reported(fake, tmp_path):
    list(train(_cfg(epochs=1), tmp_path / "run"))
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        list(train(_cfg(epochs=2), tmp_path / "run", resume=True))


def test_nan_loss_stops_with_a_clear_error(fake, tmp_path):
    with pytest.raises(NaNLossError, match="loss became nan"):
        list(train(_cfg(rules=("nan-rule",)), tmp_path / "run"))


def test_incompatible_combination_lists_what_works(fake):
    with pytest.raises(IncompatibleError) as exc:
        build(_cfg(rules=("picky",), neuron="lif", conn="srsc"))
    msg = str(exc.value)
    assert "supports neurons ['toy-neuron'], not 'lif'" in msg
    assert "Gradient rules that accept --neuron lif --conn srsc: ['bptt'" in msg
    with pytest.raises(IncompatibleError, match="has_surrogate"):
        build(_cfg(neuron="toy-neuron", conn="ff"))


def test_exactly_one_gradient_rule(fake):
    with pytest.raises(IncompatibleError, match="exactly one gradient rule"):
        build(_cfg(rules=("bptt", "nan-rule")))


def test_bad_parameters_get_close_matches(fake):
    with pytest.raises(ConfigError, match="did you mean 'tau_m'|Did you mean 'tau_m'"):
        build(_cfg(params={"neuron": {"tau_mm": 3}}))
    with pytest.raises(ConfigError, match="expects a float"):
        build(_cfg(params={"neuron": {"tau_m": "fast"}}))
    with pytest.raises(ConfigError, match="unknown keys 'epoch'"):
        TrainConfig.from_dict({"epoch": 3})


def test_learning_on_a_separable_toy_task(fake):
    recs = list(train(_cfg(epochs=4, conn="ff", lr=1e-2, hidden=(16,))))
    assert recs[-1].test_accuracy >= 0.9


def test_train_shows_its_progress_the_preprocessing_loops(fake, monkeypatch):
    """The progress callable given to train() also receives the loaders' per-file loops (data.track)."""
    from snnkit_core.contract.dataset import track

    cfg = _cfg(epochs=1)
    built = build(cfg)
    original = built.dataset.load

    def load(split):
        for _ in track(range(3), total=3, description=f"decode {split}"):
            pass
        return original(split)

    monkeypatch.setattr(built.dataset, "load", load)
    seen = []

    def progress(iterable, total=None, description=""):
        seen.append(description)
        yield from iterable

    list(train(cfg, built=built, progress=progress))
    assert "decode train" in seen and "decode test" in seen and any(d.startswith("epoch") for d in seen)
