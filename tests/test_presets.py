"""The presets that ship inside the package: each one assembles, ``snnkit presets`` lists them all (80 columns,
piped, JSON), ``snnkit presets NAME`` is a ``--config`` file, ``snnkit train --preset NAME`` starts from it with
the command line on top, unknown names get close matches, and the wheel carries the files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from click.testing import CliRunner

from snnkit_cli import presets
from snnkit_cli.main import cli
from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.config import TrainConfig

from .conftest import REPO

FOLDER = REPO / "cli" / "snnkit_cli" / "presets"
NAMES = sorted(p.stem for p in FOLDER.glob("*.toml"))


def test_every_file_in_the_folder_is_a_preset():
    assert len(NAMES) >= 19, NAMES
    assert presets.names() == NAMES
    assert "scsr-fsdd" in NAMES and "asrc-psmnist" in NAMES and "nrr-deep-image-fsdd" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_assembles_without_data(name):
    """A dry run: every component, parameter and the optimizer are built from the preset; nothing is read."""
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.engine.training import build, make_optimizer

    preset = presets.get(name)
    cfg = preset.config().evolve(device="cpu")
    built = build(cfg)
    assert make_optimizer(built).param_groups
    assert built.dataset.name == preset.dataset == cfg.dataset
    assert [type(r).name for r in built.rules] == list(cfg.rules)
    # what the [preset] table says about the data matches the dataset
    dataset_cls = get_registry().get("dataset", cfg.dataset)
    assert preset.meta["ships"] is (not getattr(dataset_cls, "reads_data_dir", True)), name
    if preset.meta["data"] == "download":
        assert "download" in {p.name for p in dataset_cls.params}, f"{name}: {cfg.dataset} has no download option"
    assert all(isinstance(preset.meta[k], str) and preset.meta[k] for k in presets.FIELDS if k != "ships")
    assert (REPO / preset.meta["see"]).is_file(), f"{name}: see = {preset.meta['see']} does not exist"


def test_a_damaged_preset_is_named(monkeypatch, tmp_path):
    (tmp_path / "bad.toml").write_text('[train]\nneuron = "lif"\n')
    monkeypatch.setattr(presets, "_folder", lambda: tmp_path)
    with pytest.raises(ConfigError, match="preset bad is damaged.*reproduces"):
        presets.get("bad")


def test_presets_lists_every_preset_within_80_columns():
    res = CliRunner().invoke(cli, ["presets"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80]
    listed = [line.split()[0] for line in lines if line.split() and line.split()[0] in NAMES]
    assert listed == NAMES
    for name in NAMES:
        meta = presets.get(name).meta
        row = next(line for line in lines if line.startswith(name + " "))
        assert meta["paper"] in row and meta["ours"] in row and presets.get(name).dataset in row, row
        assert meta["reproduces"].split()[0] in lines[lines.index(row) + 1]
    assert "\x1b[" not in res.output  # plain text when piped


def test_presets_json():
    res = CliRunner().invoke(cli, ["presets", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == NAMES
    for r in rows:
        assert set(r) == {"name", "dataset", *presets.FIELDS}
        assert r["dataset"] == tomllib.loads((FOLDER / f"{r['name']}.toml").read_text())["train"]["dataset"]
    one = json.loads(CliRunner().invoke(cli, ["presets", "src-gsc", "--json"]).output)
    assert one["train"]["conn"] == "src" and one["paper"] == rows[NAMES.index("src-gsc")]["paper"]


@pytest.mark.parametrize("name", NAMES)
def test_presets_name_prints_a_config_file(name, tmp_path):
    res = CliRunner().invoke(cli, ["presets", name])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"# preset {name}: snnkit train --preset {name}")
    assert "[preset]" not in res.output and "[train]" in res.output
    assert f"# paper: {presets.get(name).meta['paper']}" in res.output
    saved = tmp_path / "mine.toml"
    saved.write_text(res.output)
    assert TrainConfig.from_toml(saved) == presets.get(name).config()


def test_unknown_preset_gets_close_matches(tmp_path):
    for args in (["presets", "scsr-fsd"], ["train", "--preset", "scsr-fsd", "--out", str(tmp_path / "run")]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 1, res.output
        assert "unknown preset 'scsr-fsd' (did you mean 'scsr-fsdd'" in res.output
        assert "Traceback" not in res.output and "--config FILE" in res.output
    assert not (tmp_path / "run").exists()


def test_config_and_preset_together_are_refused(tmp_path):
    own = tmp_path / "own.toml"
    own.write_text("[train]\nepochs = 3\n")
    res = CliRunner().invoke(cli, ["train", "--preset", "scsr-fsdd", "--config", str(own)])
    assert res.exit_code == 1 and "give one" in res.output and "snnkit presets scsr-fsdd > FILE" in res.output


def test_options_override_the_preset(tmp_path):
    """Precedence: defaults < preset < options; --set merges into the preset's parameter tables."""
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", "--preset", "scsr-fsdd", "--dataset", "espeak-digits", "--hidden", "8,8,8", "--epochs", "1",
        "--limit", "40", "--lr", "0.01", "--set", "neuron.tau_m=4", "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    saved = TrainConfig.from_toml(run / "config.toml")
    preset = presets.get("scsr-fsdd").config()
    assert (saved.dataset, saved.hidden, saved.epochs, saved.lr) == ("espeak-digits", (8, 8, 8), 1, 0.01)
    assert (saved.rules, saved.batch_size, saved.conn) == (preset.rules, preset.batch_size, preset.conn)
    assert preset.batch_size != TrainConfig().batch_size  # the preset, not the default, gave it
    assert float(saved.params["neuron"]["tau_m"]) == 4.0 and saved.params["neuron"]["tau_s"] == 8.0
    assert saved.params["dataset"] == preset.params["dataset"]
    res = CliRunner().invoke(cli, ["train", "--resume", str(run), "--preset", "scsr-fsdd"])
    assert res.exit_code == 1 and "--preset" in res.output


def test_train_preset_scsr_fsdd_on_the_data_root(tmp_path, shared_data):
    """The acceptance line: snnkit train --preset scsr-fsdd --data-dir ROOT --epochs 1 (on 100 examples)."""
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--preset", "scsr-fsdd", "--data-dir", str(shared_data), "--epochs", "1",
                                   "--limit", "100", "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "rule=tssl-bp+bip dataset=fsdd hidden=64,64,64 epochs=1" in " ".join(res.output.split())
    saved = TrainConfig.from_toml(run / "config.toml")
    assert saved == presets.get("scsr-fsdd").config().evolve(epochs=1, limit=100, data_dir=str(shared_data.absolute()))
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_the_wheel_carries_every_preset(tmp_path):
    """Build the snnkit wheel from a copy of the sources (no build isolation: the installed setuptools)."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, src / part)
    for part in ("snnkit", "snnkit_core", "cli"):
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "wheel")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("snnkit-*.whl")
    members = set(zipfile.ZipFile(wheel).namelist())
    assert {f"snnkit_cli/presets/{n}.toml" for n in NAMES} <= members
    assert "snnkit_cli/presets/__init__.py" in members and "snnkit_cli/presets_cmd.py" in members


def test_listing_presets_does_not_import_torch():
    code = ("import sys; from click.testing import CliRunner; from snnkit_cli.main import cli; "
            "r = CliRunner().invoke(cli, ['presets']); s = CliRunner().invoke(cli, ['presets', 'scsr-fsdd']); "
            "print(r.exit_code, s.exit_code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0", "False"], out.stdout + out.stderr
