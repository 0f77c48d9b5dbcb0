"""`snnkit --help`, `--version` and a repeated `list-plugins` start without importing torch, mlflow or tensorboard."""

from __future__ import annotations

import os
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
