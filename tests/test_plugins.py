"""The plugin contract: registration, attribution, duplicates, broken plugins, plugin selection."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from snnkit_core import Neuron, hookimpl
from snnkit_core.contract.errors import RegistrationError, UnknownComponentError

from .fakeplugin import ToyNeuron


def test_fake_plugin_components_are_attributed(fake):
    reg = fake.get_registry()
    comp = reg.component("neuron", "toy-neuron")
    assert comp.plugin == "snnkit-fake" and comp.cls is ToyNeuron
    assert {c.name for c in reg.by_plugin("snnkit-fake")} == {"toy-neuron", "picky", "nan-rule", "rising-loss", "tiny"}
    # the first-party plugins are still there beside it
    assert reg.component("neuron", "lif").plugin == "snnkit-neurons"


def test_unregister_removes_components(fake):
    fake.unregister_plugin("snnkit-fake")
    with pytest.raises(UnknownComponentError):
        fake.get_registry().get("neuron", "toy-neuron")


def test_duplicate_names_are_rejected_naming_both_plugins(fake):
    class Other(Neuron):
        name = "lif"

        def initial_state(self, *a):
            ...

        def step(self, *a):
            ...

    class Dup:
        @hookimpl
        def register_neurons(self, register):
            register(Other)

    with pytest.raises(RegistrationError) as exc:
        fake.register_plugin(Dup(), name="snnkit-dup")
    assert "snnkit-neurons" in str(exc.value) and "snnkit-dup" in str(exc.value)
    fake.unregister_plugin("snnkit-dup")


@pytest.mark.parametrize(
    "bad, expected",
    [(object, "not a subclass"), (type("NoName", (ToyNeuron,), {"name": "Bad Name"}), "invalid name")],
)
def test_invalid_registrations_name_the_plugin(fake, bad, expected):
    class Bad:
        @hookimpl
        def register_neurons(self, register):
            register(bad)

    with pytest.raises(RegistrationError, match=expected) as exc:
        fake.register_plugin(Bad(), name="snnkit-bad")
    assert "snnkit-bad" in str(exc.value)
    fake.unregister_plugin("snnkit-bad")


def test_misspelt_hook_fails_loudly(fresh_plugins):
    from pluggy import PluginValidationError

    class Typo:
        @hookimpl
        def register_nurons(self, register):  # noqa: D401 - deliberately misspelt
            ...

    with pytest.raises(PluginValidationError):
        fresh_plugins.register_plugin(Typo(), name="snnkit-typo")
    fresh_plugins.unregister_plugin("snnkit-typo")


def test_unknown_names_get_close_matches(fresh_plugins):
    with pytest.raises(UnknownComponentError) as exc:
        fresh_plugins.get_registry().get("connectivity", "srcs")
    assert "srsc" in exc.value.close_matches
    assert "Did you mean" in str(exc.value) and "'srsc'" in str(exc.value).split("Did you mean")[1].split("?")[0]
    assert "Installed connectivity components:" in str(exc.value)


def test_env_var_selects_plugins(fresh_plugins, monkeypatch):
    monkeypatch.setenv("SNNKIT_LOAD_PLUGINS", "")
    fresh_plugins.reset_for_tests()
    assert fresh_plugins.plugin_infos() == []
    assert fresh_plugins.get_registry().all() == []
    monkeypatch.setenv("SNNKIT_LOAD_PLUGINS", "snnkit-neurons")
    fresh_plugins.reset_for_tests()
    assert [p.name for p in fresh_plugins.plugin_infos()] == ["snnkit-neurons"]
    assert fresh_plugins.get_registry().names("neuron") and not fresh_plugins.get_registry().names("rule")


def _install_distribution(root, monkeypatch, dist: str, module: str, source: str):
    """A real distribution on sys.path (METADATA + entry_points.txt) with one ``snnkit`` entry point."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[snnkit]\n{dist} = {module}\n")
    monkeypatch.syspath_prepend(str(root))


_IMPOSTOR = """
from snnkit_core import hookimpl
from snnkit_neurons.lif import LIF


class Impostor(LIF):
    name = "lif"


@hookimpl
def register_neurons(register):
    register(Impostor)
"""


def test_a_third_party_duplicate_cannot_displace_a_first_party_component(fresh_plugins, tmp_path, monkeypatch):
    # "aaa-..." sorts before "snnkit-neurons", so name order alone would let it win
    _install_distribution(tmp_path, monkeypatch, "aaa-impostor", "aaa_impostor", _IMPOSTOR)
    fresh_plugins.reset_for_tests()
    infos = {p.name: p for p in fresh_plugins.plugin_infos()}
    reg = fresh_plugins.get_registry()
    assert infos["snnkit-neurons"].error is None
    assert {c.name: c.plugin for c in reg.by_plugin("snnkit-neurons")}.keys() >= {"lif", "lif-soft"}
    assert reg.get("neuron", "lif").__name__ == "LIF"
    err = infos["aaa-impostor"].error
    assert "registered twice" in err and "snnkit-neurons" in err and "aaa-impostor" in err
    assert reg.by_plugin("aaa-impostor") == []


_COMMANDS = """
from snnkit_core import hookimpl


@hookimpl
def register_commands(cli):
    if "{name}" == "cmd-broken":
        raise RuntimeError("cmd hook boom")

    @cli.command("{name}-hello")
    def hello():
        print("hello from {name}")
"""


def test_a_failing_command_hook_is_named_and_other_commands_still_appear(fresh_plugins, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import snnkit_cli.main as main

    _install_distribution(tmp_path, monkeypatch, "cmd-broken", "cmd_broken", _COMMANDS.replace("{name}", "cmd-broken"))
    _install_distribution(tmp_path, monkeypatch, "cmd-good", "cmd_good", _COMMANDS.replace("{name}", "cmd-good"))
    fresh_plugins.reset_for_tests()
    cli = main.SnnkitGroup(name="snnkit", commands=dict(main.cli.commands))  # a fresh group: commands added once
    res = CliRunner().invoke(cli, ["cmd-good-hello"])
    assert res.exit_code == 0 and "hello from cmd-good" in res.output, res.output
    assert "plugin 'cmd-broken' failed to add its commands" in res.output and "cmd hook boom" in res.output
    infos = {p.name: p for p in fresh_plugins.plugin_infos()}
    assert "cmd hook boom" in infos["cmd-broken"].error and infos["cmd-good"].error is None


def _install_broken_distribution(root, monkeypatch):
    """A real distribution on sys.path whose entry point raises on import."""
    (root / "snnkit_broken_demo.py").write_text("raise RuntimeError('boom: this plugin is broken on purpose')\n")
    info = root / "snnkit_broken_demo-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: snnkit-broken-demo\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[snnkit]\nsnnkit-broken-demo = snnkit_broken_demo\n")
    monkeypatch.syspath_prepend(str(root))


def test_broken_plugin_is_listed_and_the_rest_works(fresh_plugins, tmp_path, monkeypatch):
    _install_broken_distribution(tmp_path, monkeypatch)
    fresh_plugins.reset_for_tests()
    infos = {p.name: p for p in fresh_plugins.plugin_infos()}
    assert "boom" in infos["snnkit-broken-demo"].error
    assert infos["snnkit-broken-demo"].version == "0.0.1"
    assert infos["snnkit-neurons"].error is None
    assert "lif" in fresh_plugins.get_registry().names("neuron")


def test_broken_plugin_in_cli_list_and_train(fresh_plugins, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from snnkit_cli.main import cli

    _install_broken_distribution(tmp_path, monkeypatch)
    fresh_plugins.reset_for_tests()
    runner = CliRunner()
    res = runner.invoke(cli, ["list-plugins", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert "boom" in rows["snnkit-broken-demo"]["error"] and rows["snnkit-broken-demo"]["components"] == []
    assert {"kind": "neuron", "name": "lif"} in rows["snnkit-neurons"]["components"]
    res = runner.invoke(
        cli,
        ["train", "--limit", "40", "--epochs", "1", "--hidden", "16,16,16", "--out", str(tmp_path / "run"), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "metrics.jsonl").exists()


def test_core_import_does_not_pull_in_cli_or_audio_libraries():
    code = textwrap.dedent(
        """
        import sys
        import snnkit_core, snnkit_core.engine.training, snnkit_core.engine.network, snnkit_core.contract.plugins
        bad = [m for m in ("click", "rich", "soundfile") if m in sys.modules]
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
