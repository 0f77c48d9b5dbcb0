"""One plugin cannot take the CLI down: misspelt hooks, BaseException and argv parsing at import,
whole reasons in list-plugins, name clashes explained, and the wording of unknown-name errors."""

from __future__ import annotations

import json
import re
import sys

import pytest
from click.testing import CliRunner

from snnkit_core.contract.errors import UnknownComponentError

from .test_plugins import _install_distribution

_TYPO = """
from snnkit_core import hookimpl


@hookimpl
def register_nurons(register):
    pass
"""

_SYSEXIT = "raise SystemExit('this plugin exits at import')\n"

_ARGV = """
import argparse, sys
parser = argparse.ArgumentParser(prog="argv-plugin")
parser.add_argument("--plugin-only-flag", required=True)
ARGS = parser.parse_args()
"""

_LONG = "raise RuntimeError('a long reason ' + 'word ' * 30 + 'x' * 150 + '-END-OF-THE-REASON')\n"

_CLASH = """
from snnkit_core import hookimpl
from snnkit_neurons.lif import LIF


class Impostor(LIF):
    name = "lif"


class Harmless(LIF):
    name = "harmless-neuron"


@hookimpl
def register_neurons(register):
    register(Harmless)
    register(Impostor)
"""


@pytest.fixture
def cli_with(fresh_plugins, tmp_path, monkeypatch):
    from snnkit_cli import main

    def install(**sources):
        for i, (dist, source) in enumerate(sources.items()):
            sub = tmp_path / f"d{i}"
            sub.mkdir()
            _install_distribution(sub, monkeypatch, dist.replace("_", "-"), dist, source)
        fresh_plugins.reset_for_tests()
        return main.SnnkitGroup(name="snnkit", commands=dict(main.cli.commands))

    return install


def _errors(runner, cli):
    res = runner.invoke(cli, ["list-plugins", "--json"])
    assert res.exit_code == 0, res.output
    return {r["name"]: r["error"] for r in json.loads(res.output)}


@pytest.mark.parametrize("module, source, reason", [
    ("bad_typo", _TYPO, "'register_nurons', which is not a snnkit hook (did you mean 'register_neurons'?)"),
    ("bad_exit", _SYSEXIT, "SystemExit: this plugin exits at import"),
    ("bad_argv", _ARGV, "the following arguments are required: --plugin-only-flag"),
])
def test_a_bad_plugin_is_marked_broken_and_every_command_still_works(cli_with, module, source, reason, monkeypatch):
    cli = cli_with(**{module: source})
    monkeypatch.setattr(sys, "argv", ["snnkit", "info", "lif"])
    runner = CliRunner()
    errors = _errors(runner, cli)
    name = module.replace("_", "-")
    assert reason in errors[name], errors[name]
    assert errors["snnkit-neurons"] is None
    for args in (["--help"], ["info", "lif"], ["list-plugins"]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 0 and "Traceback" not in res.output, (args, res.output)
    assert sys.argv == ["snnkit", "info", "lif"]  # the plugin saw none of it, and it is restored


def test_the_table_shows_a_broken_plugins_whole_reason(cli_with):
    cli = cli_with(long_plugin=_LONG)
    res = CliRunner().invoke(cli, ["list-plugins"])
    assert res.exit_code == 0
    flat = re.sub(r"[\s│┃]", "", res.output)
    assert "x" * 150 + "-END-OF-THE-REASON" in flat and "word" * 30 in flat  # a long token folded, not cut


def test_a_name_clash_explains_the_components_it_dropped(cli_with):
    from snnkit_core.contract.plugins import get_registry

    cli = cli_with(aaa_clash=_CLASH)
    errors = _errors(CliRunner(), cli)
    assert "registered twice" in errors["aaa-clash"]
    with pytest.raises(UnknownComponentError) as exc:
        get_registry().get("neuron", "harmless-neuron")
    msg = str(exc.value)
    assert "plugin 'aaa-clash' would provide it but is not loaded" in msg and "registered twice" in msg
    res = CliRunner().invoke(cli, ["info", "harmless-neuron"])
    assert res.exit_code == 1 and "aaa-clash" in res.output


def test_unknown_name_wording(fake):
    from snnkit_cli.main import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["info", "lf"])
    assert "Installed components:" in res.output and "component components" not in res.output
    res = runner.invoke(cli, ["info", "--kind", "dataset", "lif"])
    assert res.exit_code == 1 and "Did you mean 'lif'" not in res.output and "is a neuron, not a dataset" in res.output
    res = runner.invoke(cli, ["train", "--rule", "picky", "--dataset", "tiny", "--neuron", "lif", "--conn", "ff"])
    assert res.exit_code == 1 and "neurons none" not in res.output and "connectivity none" not in res.output
