"""Recipes: a component's ``recipe`` fills in only what the user did not choose (snnkit.recipes), ``snnkit train``
prints and records what it filled, an explicit conflicting choice is still refused, and every bare command of
experiments/recipes-bare/recipes-bare.json assembles and trains one step on the shipped data."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from snnkit.recipes import fill_recipe
from snnkit_cli.main import cli
from snnkit_core import hookimpl
from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.config import TrainConfig
from snnkit_rules.bptt import BPTT

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "recipes-bare" / "recipes-bare.json"


class RecipeRule(BPTT):
    """bptt under another name, with a recipe (test plugin)."""

    name = "recipe-rule"
    description = "bptt with a recipe (test plugin)"
    recipe = {"neuron": "lif", "conn": "ff", "hidden": (6, 5), "neuron.tau_m": 4.0, "neuron.no_such": 1,
              "dataset.n": 40, "rule.recipe-rule.lr": 0.02, "rule.bptt.lr": 0.5}


class GroupRule(BPTT):
    """A recipe with a group of keys that only work together (test plugin)."""

    name = "group-rule"
    description = "bptt with a grouped recipe (test plugin)"
    recipe = {"conn": "ff", "shape": {"batch_size": 8, "dataset.n": 24, "neuron.tau_m": 3.0}}


class BadRecipeRule(BPTT):
    """A recipe naming a key that is not a config key (test plugin)."""

    name = "bad-recipe"
    description = "a recipe with a misspelt key (test plugin)"
    recipe = {"hiden": (4,)}


class RecipePlugin:
    @hookimpl
    def register_rules(self, register):
        register(RecipeRule)
        register(BadRecipeRule)
        register(GroupRule)


@pytest.fixture
def recipes(fake):
    fake.register_plugin(RecipePlugin(), name="snnkit-recipe-test")
    try:
        yield fake.get_registry()
    finally:
        fake.unregister_plugin("snnkit-recipe-test")


def _cfg(**changes) -> dict:
    return TrainConfig(dataset="tiny", rules=("recipe-rule",)).evolve(**changes).to_dict()


def test_fills_every_unchosen_key_the_run_can_use(recipes):
    cfg, filled = fill_recipe(_cfg(), {"rules", "dataset"}, recipes)
    assert (cfg["neuron"], cfg["conn"], list(cfg["hidden"])) == ("lif", "ff", [6, 5])
    assert cfg["params"] == {"neuron": {"tau_m": 4.0}, "dataset": {"n": 40}, "rule.recipe-rule": {"lr": 0.02}}
    # lif was the default already: not "filled"; a parameter the neuron lacks and a rule the run lacks are skipped
    assert list(filled) == ["conn", "hidden", "neuron.tau_m", "dataset.n", "rule.recipe-rule.lr"]
    assert filled["hidden"] == {"value": (6, 5), "from": "rule recipe-rule"}


def test_a_chosen_key_is_never_filled(recipes):
    given = _cfg(hidden=(3,), conn="self", params={"neuron": {"tau_m": "9"}})
    cfg, filled = fill_recipe(given, {"rules", "dataset", "hidden", "conn", "neuron.tau_m", "lr"}, recipes)
    assert (list(cfg["hidden"]), cfg["conn"], cfg["params"]["neuron"]) == ([3], "self", {"tau_m": "9"})
    assert "rule.recipe-rule.lr" not in filled  # --lr was given: it overrides the rule's lr anyway
    assert set(filled) == {"dataset.n"}
    assert given["params"] == {"neuron": {"tau_m": "9"}}  # the caller's dict is not changed


def test_parameters_for_the_recipes_neuron_skip_another_neuron(recipes):
    cfg, filled = fill_recipe(_cfg(neuron="alif"), {"rules", "dataset", "neuron"}, recipes)
    assert cfg["neuron"] == "alif" and "neuron.tau_m" not in filled and "neuron" not in cfg["params"]


def test_a_group_is_filled_whole_or_not_at_all(recipes):
    group = {"rules": ("group-rule",)}
    cfg, filled = fill_recipe(_cfg(**group), {"rules", "dataset"}, recipes)
    assert list(filled) == ["conn", "batch_size", "dataset.n", "neuron.tau_m"] and cfg["batch_size"] == 8
    cfg, filled = fill_recipe(_cfg(**group), {"rules", "dataset", "batch_size"}, recipes)  # one key chosen
    assert list(filled) == ["conn"] and cfg["params"] == {}
    cfg, filled = fill_recipe(_cfg(neuron="alif", **group), {"rules", "dataset"}, recipes)  # alif has no tau_m
    assert list(filled) == ["conn"] and cfg["batch_size"] == 32


def test_st_rsbps_speech_network_stays_out_of_a_run_that_chose_its_own(fresh_plugins):
    """The paper's Fashion-MNIST 400-R400 (hidden and V_th given) keeps the dataset's T = 400: the speech recipe's
    T = 150 belongs to its 200x3 network and goes in only with it; the bare command still gets all of it."""
    from snnkit_core.contract.plugins import get_registry

    reg = get_registry()
    fmnist = TrainConfig(dataset="fmnist", rules=("st-rsbp",), hidden=(400, 400),
                         params={"neuron": {"v_th": 15}}).to_dict()
    cfg, filled = fill_recipe(fmnist, {"rules", "dataset", "hidden", "neuron.v_th"}, reg)
    assert "dataset.steps" not in filled and "steps" not in cfg["params"].get("dataset", {})
    assert list(cfg["hidden"]) == [400, 400] and cfg["params"]["neuron"] == {"v_th": 15}
    assert {"neuron", "conn", "rule.st-rsbp.omega_floor", "rule.st-rsbp.lateral_inhibition"} <= set(filled)
    assert cfg["params"]["rule.st-rsbp"]["lateral_inhibition"] == 0.0
    bare, filled = fill_recipe(TrainConfig(rules=("st-rsbp",)).to_dict(), {"rules"}, reg)
    assert bare["params"]["dataset"]["steps"] == 150 and list(bare["hidden"]) == [200, 200, 200]
    assert bare["params"]["neuron"]["v_th"] == 5.0
    paper, filled = fill_recipe(TrainConfig(rules=("st-rsbp",), params={"rule.st-rsbp": {"lateral_inhibition": 1.0}})
                                .to_dict(), {"rules", "rule.st-rsbp.lateral_inhibition"}, reg)
    assert "rule.st-rsbp.lateral_inhibition" not in filled and list(paper["hidden"]) == [200, 200, 200]
    assert paper["params"]["rule.st-rsbp"]["lateral_inhibition"] == 1.0  # the paper's inhibition, asked for, is kept


def test_a_recipe_key_that_is_no_config_key_is_the_plugins_fault(recipes):
    with pytest.raises(ConfigError, match=r"recipe of rule bad-recipe names 'hiden'.*plugin"):
        fill_recipe(_cfg(rules=("bad-recipe",)), {"rules"}, recipes)


def test_train_prints_fills_and_records_and_config_toml_reruns_identically(recipes, tmp_path):
    run, again = tmp_path / "run", tmp_path / "again"
    args = ["train", "--rule", "recipe-rule", "--dataset", "tiny", "--epochs", "1", "--quiet", "--set",
            "neuron.tau_m=3"]
    res = CliRunner().invoke(cli, [*args, "--out", str(run)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("recipe of"))
    assert "rule recipe-rule" in line and "hidden=6,5" in line and "dataset.n=40" in line
    assert "tau_m" not in line  # chosen with --set
    saved = TrainConfig.from_toml(run / "config.toml")
    assert saved.hidden == (6, 5) and saved.conn == "ff" and saved.params["dataset"] == {"n": 40}
    assert saved.params["neuron"] == {"tau_m": "3"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert sorted(manifest["recipe"]) == ["conn", "dataset.n", "hidden", "rule.recipe-rule.lr"]
    assert manifest["recipe"]["dataset.n"] == {"value": 40, "from": "rule recipe-rule"}
    res = CliRunner().invoke(cli, ["train", "--config", str(run / "config.toml"), "--out", str(again), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "recipe of" not in res.output
    assert (again / "config.toml").read_text() == (run / "config.toml").read_text()
    assert "recipe" not in json.loads((again / "manifest.json").read_text())


def test_a_presets_keys_count_as_chosen(fresh_plugins):
    """A preset means what it says: every key it sets is chosen, so no shipped preset gets a recipe filled in
    (nrr-fsdd would otherwise get reward-prop's lr and deep image form)."""
    from snnkit_cli.options import apply_recipes, chosen_keys, new_config
    from snnkit_cli.presets import names

    chosen = chosen_keys(None, {}, (), (), "nrr-fsdd")
    assert {"hidden", "lr", "rules", "dataset.split", "rule.reward-prop.step_size"} <= chosen
    for name in names():
        cfg = new_config(None, {}, (), (), preset=name)
        assert apply_recipes(cfg, chosen_keys(None, {}, (), (), name)) == (cfg, {}), name
    assert apply_recipes(new_config(None, {}, (), (), preset="nrr-fsdd"), {"rules"})[1]  # the check can fail


def test_an_explicit_conflicting_choice_keeps_the_refusal(fresh_plugins, tmp_path):
    res = CliRunner().invoke(cli, ["train", "--rule", "st-rsbp", "--neuron", "lif", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert "lif-rsbp" in res.output and "Traceback" not in res.output
    assert "recipe of" not in res.output  # refused before the run is announced
    assert not (tmp_path / "r").exists()


def test_info_shows_a_recipe(recipes):
    res = CliRunner().invoke(cli, ["info", "recipe-rule"])
    assert res.exit_code == 0, res.output
    assert "recipe (filled in where you choose nothing): neuron=lif conn=ff hidden=6,5 neuron.tau_m=4.0" in res.output
    assert "recipe (filled in" not in CliRunner().invoke(cli, ["info", "bptt"]).output  # bptt declares none
    res = CliRunner().invoke(cli, ["info", "group-rule"])
    assert "conn=ff [shape: batch_size=8 dataset.n=24 neuron.tau_m=3.0]" in res.output


def _bare_commands() -> list[dict]:
    return json.loads(RESULTS.read_text())["runs"]


@pytest.mark.parametrize("entry", _bare_commands(), ids=lambda e: e["name"])
def test_each_bare_command_fills_what_its_record_says_and_trains_a_step(fresh_plugins, tmp_path, entry):
    """The recorded accuracy belongs to today's recipe (a changed recipe must be measured again), and the command
    assembles and runs on the shipped data (one epoch on a few examples; not an accuracy check)."""
    bare = shlex.split(entry["bare_command"])[1:]  # "train ..."
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, [*bare, "--epochs", "1", "--limit", "20", "--val-fraction", "0", "--quiet",
                                   "--out", str(run)])
    assert res.exit_code == 0, res.output
    filled = json.loads((run / "manifest.json").read_text()).get("recipe", {})
    assert {k: v["value"] for k, v in filled.items()} == entry["filled"]


@pytest.mark.skipif(not os.environ.get("SNNKIT_RECIPE_ACCURACY"),
                    reason="5-epoch accuracy runs (~5 min on 2 cores); set SNNKIT_RECIPE_ACCURACY=1")
@pytest.mark.slow
@pytest.mark.parametrize("entry", _bare_commands(), ids=lambda e: e["name"])
def test_each_bare_command_reaches_its_bar(fresh_plugins, tmp_path, entry):
    res = CliRunner().invoke(cli, [*shlex.split(entry["command"])[1:], "--quiet", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_accuracy_at_best"] >= entry["bar"], summary
