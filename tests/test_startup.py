"""`snnkit --help`, `--version` and a repeated `list-plugins` start without importing torch, mlflow or tensorboard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent(
    """
    import sys
    from click.testing import CliRunner
    from snnkit_cli.main import cli
    res = CliRunner().invoke(cli, sys.argv[1:])
    assert res.exit_code == 0, res.output
    print(any(m in sys.modules for m in ("torch", "mlflow", "tensorboard", "wandb")))
    """
)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["list-plugins"], ["list-plugins", "--json"]])
def test_light_commands_do_not_import_torch(tmp_path, args):
    env = dict(os.environ, SNNKIT_CACHE=str(tmp_path))

    def run():
        return subprocess.run([sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True,
                              timeout=120)

    if args[0] == "list-plugins":
        first = run()  # the first listing imports every component and writes the cache
        assert first.returncode == 0, first.stderr
        assert (tmp_path / "plugin-listing.json").exists()
    res = run()
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False"


def test_the_listing_cache_is_refreshed_when_a_plugin_source_or_the_selection_changes(tmp_path, monkeypatch):
    from snnkit_cli import plugins_cmd
    from snnkit_core.contract import plugins

    from .test_plugins import _install_distribution

    _install_distribution(tmp_path, monkeypatch, "fp-demo", "fp_demo", "X = 1\n")
    key = plugins_cmd.fingerprint()
    assert plugins_cmd.fingerprint() == key
    (tmp_path / "fp_demo.py").write_text("X = 22\n")  # an edited plugin (an editable install keeps its version)
    changed = plugins_cmd.fingerprint()
    assert changed != key
    monkeypatch.setenv(plugins.ENV_VAR, "snnkit-neurons")
    assert plugins_cmd.fingerprint() != changed


# ---------------------------------------------------------------------------- third-party plugins stay light

_PLUGIN_PROBE = textwrap.dedent(
    """
    import json, sys
    from click.testing import CliRunner
    from snnkit_cli.main import cli
    from snnkit_core.contract import plugins
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0, res.output
    loaded = {p.name: p.load_s for p in plugins.load_plugins() if not p.error}
    print(json.dumps({"torch": "torch" in sys.modules, "loaded": loaded, "stderr": res.stderr}))
    """
)


def _dist_info(site, dist: str, entry: str) -> None:
    """The ``*.dist-info`` pip writes for a distribution with one ``snnkit`` entry point (METADATA, entry_points)."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[snnkit]\n{dist} = {entry}\n")


def _help_with(tmp_path, *paths) -> dict:
    import json

    env = dict(os.environ, SNNKIT_CACHE=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join(map(str, paths)))
    res = subprocess.run([sys.executable, "-c", _PLUGIN_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_generated_plugin_and_the_example_plugin_keep_help_free_of_torch(tmp_path):
    from snnkit_cli.scaffold import new_plugin

    from .conftest import REPO

    site = tmp_path / "site"
    for kind in ("neuron", "connectivity", "rule", "dataset"):
        new_plugin(f"light-{kind}", kind, tmp_path / f"light-{kind}")
        _dist_info(site, f"snnkit-light-{kind}", f"snnkit_light_{kind}.plugin")
    _dist_info(site, "snnkit-example-plugin", "snnkit_example.plugin")
    got = _help_with(tmp_path, site, REPO / "examples" / "snnkit-example-plugin",
                     *(tmp_path / f"light-{k}" for k in ("neuron", "connectivity", "rule", "dataset")))
    assert {"snnkit-example-plugin", "snnkit-light-neuron", "snnkit-light-dataset"} <= set(got["loaded"])  # loaded
    assert got["torch"] is False
    assert "warning" not in got["stderr"]
    assert got["loaded"]["snnkit-light-neuron"] < 0.5


def test_a_plugin_whose_entry_module_is_slow_is_named_in_a_warning(tmp_path):
    site = tmp_path / "site"
    _dist_info(site, "snnkit-sluggish", "snnkit_sluggish")
    (site / "snnkit_sluggish.py").write_text("import time\n\ntime.sleep(0.6)  # as an import of torch would\n")
    got = _help_with(tmp_path, site)
    assert got["loaded"]["snnkit-sluggish"] >= 0.6
    stderr = " ".join(got["stderr"].split())  # rich wraps the line
    assert re.search(r"plugin 'snnkit-sluggish' took \d+\.\d s to load its entry module", stderr), stderr
    assert got["torch"] is False
