"""Training health: warnings when the training loss keeps rising or the validation accuracy sits at chance,
printed and kept in status.json, and early stopping on the validation accuracy (--patience)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snnkit_cli.main import cli
from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.metrics import health_warnings
from snnkit_core.engine.training import train


def _rec(epoch, loss, val=None):
    return {"epoch": epoch, "train_loss": loss, **({"val_accuracy": val} if val is not None else {})}


def test_the_warnings_need_the_whole_streak():
    rising = [_rec(1, 1.0), _rec(2, 1.1), _rec(3, 1.2), _rec(4, 1.3)]
    assert set(health_warnings(rising, chance=-1.0)) == {"loss-rising"}
    assert "4" in health_warnings(rising, chance=-1.0)["loss-rising"]  # names the epoch
    assert health_warnings(rising[1:], chance=-1.0) == {}  # two rises are not three
    assert health_warnings([*rising[:3], _rec(4, 1.2)], chance=-1.0) == {}  # a flat epoch breaks the streak
    at_chance = [_rec(1, 3.0, 0.1), _rec(2, 2.0, 0.12), _rec(3, 1.0, 0.11)]
    assert set(health_warnings(at_chance, chance=0.15)) == {"val-at-chance"}
    assert health_warnings(at_chance, chance=0.105) == {}  # one epoch above the bound
    assert health_warnings([_rec(1, 3.0), _rec(2, 2.0), _rec(3, 1.0)], chance=0.15) == {}  # no validation


def test_a_climb_with_dips_between_is_flagged_as_diverging():
    """A diverging run's loss climbs with dips (st-rsbp continued at too large a learning rate, 2,436 -> 12,833 over 9
    epochs), so no three rises in a row: it is flagged once the loss stands above twice its lowest."""
    climb = [_rec(1, 2436.0), _rec(2, 3100.0), _rec(3, 2900.0), _rec(4, 4200.0), _rec(5, 3900.0), _rec(6, 5100.0)]
    assert health_warnings(climb[:5], chance=-1.0) == {}  # 3900 < 2 x 2436
    got = health_warnings(climb, chance=-1.0)
    assert set(got) == {"loss-diverging"} and "5100" in got["loss-diverging"] and "2436" in got["loss-diverging"]
    assert health_warnings([_rec(1, 1.0), _rec(2, 3.0), _rec(3, 0.5)], chance=-1.0) == {}  # back down: not flagged


def test_a_collapsing_training_accuracy_is_flagged_though_the_loss_does_not_rise():
    """st-rsbp with desired 20 on FSDD (experiments/st-rsbp-fsdd-stable): the training accuracy went 48.7 -> 41.9 ->
    25.1 % over epochs 3-5 while the loss never rose three epochs in a row nor doubled: flagged at 25.1 %, below
    chance + half of (best - chance)."""
    recs = [{"epoch": e, "train_loss": loss, "train_accuracy": a}
            for e, (loss, a) in enumerate([(241, .281), (181, .455), (159, .487), (163, .419), (185, .251)], 1)]
    assert health_warnings(recs[:4], chance=0.1) == {}  # 41.9 % keeps more than half of 48.7 - 10
    got = health_warnings(recs, chance=0.1)
    assert set(got) == {"accuracy-collapsing"} and "25.1%" in got["accuracy-collapsing"] and "48.7%" in got[
        "accuracy-collapsing"]
    assert health_warnings(recs, chance=-1.0) == {}  # without validation against 0: 25.1 % keeps half of 48.7 %
    sixth = {"epoch": 6, "train_loss": 178, "train_accuracy": .181}
    assert health_warnings([*recs, sixth], chance=-1.0).keys() == {"accuracy-collapsing"}
    small = [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.18}, {"epoch": 2, "train_loss": 1.0,
                                                                      "train_accuracy": 0.11}]
    assert health_warnings(small, chance=0.1) == {}  # never more than 10 points above chance: nothing to lose


def _cfg(**kw):
    base = dict(neuron="lif", conn="srsc", rules=("rising-loss",), dataset="tiny", hidden=(8, 8, 8), epochs=5,
                batch_size=16, device="cpu", lr=1e-9)
    return TrainConfig(**{**base, **kw})


def test_a_rising_loss_is_warned_once_per_streak_and_kept_in_status(fake, tmp_path):
    recs = list(train(_cfg(), tmp_path / "r"))
    rising = [[w for w in r.warnings if "training loss has risen for 3 epochs" in w] for r in recs]
    assert [len(w) for w in rising] == [0, 0, 0, 1, 0]  # epoch 4: three rises in a row; epoch 5 goes on, not new
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "finished" and status["warnings"] == [w for r in recs for w in r.warnings]
    assert [w for w in status["warnings"] if "has risen" in w] == rising[3]
    assert "warnings" not in (tmp_path / "r" / "metrics.jsonl").read_text()  # not a metrics column


def test_the_cli_prints_the_warning(fake, tmp_path):
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--rule", "rising-loss", "--hidden", "8,8,8",
                                   "--epochs", "4", "--lr", "1e-9", "--device", "cpu", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "warning: the training loss has risen for 3 epochs in a row" in res.output


def test_patience_stops_a_run_that_stopped_improving(fake, tmp_path):
    run = tmp_path / "p"
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--rule", "rising-loss", "--hidden", "8,8,8",
                                   "--epochs", "8", "--patience", "2", "--lr", "1e-9", "--device", "cpu",
                                   "--out", str(run)])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # lr 1e-9: the validation accuracy never changes, so epoch 1 stays the best (ties keep the earlier)
    assert len({r["val_accuracy"] for r in records}) == 1 and len(records) == 3
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["stopped_early"] == 3
    assert "stopped early after epoch 3 of 8" in res.output and "not improved for 2 epochs" in res.output
    again = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert again.exit_code == 0 and "stopped early at epoch 3" in again.output and "nothing to resume" in again.output


def test_patience_needs_a_validation_split(fake, tmp_path):
    with pytest.raises(ConfigError, match="--patience 2 stops on the validation accuracy.*no validation split"):
        list(train(_cfg(patience=2, val_fraction=0.0), tmp_path / "n"))
    assert not (tmp_path / "n").exists()


def test_a_validation_split_too_small_to_tell_chance_gives_no_warning():
    """Two validation examples of two classes: chance + 2 sd is above 100 %, so every accuracy would be 'at
    chance'; the bound is then off (-1), not a warning that cannot be right."""
    from types import SimpleNamespace

    from snnkit_core.engine.training import _chance

    built = SimpleNamespace(dataset=SimpleNamespace(num_classes=2))
    assert _chance(built, [0, 1]) == -1.0
    assert 0.5 < _chance(built, list(range(400))) < 0.56  # 0.5 + 2 sqrt(0.25 / 400) = 0.55
