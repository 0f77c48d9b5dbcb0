"""``snnkit plugin new NAME --kind KIND`` writes an installable package whose contract tests pass as generated."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib

import pytest
from click.testing import CliRunner

from snnkit_cli.main import cli

KINDS = ("neuron", "connectivity", "rule", "dataset")


def test_each_kind_generates_a_package_whose_tests_pass_and_whose_entry_point_registers(tmp_path, fresh_plugins):
    roots = []
    for kind in KINDS:
        root = tmp_path / f"snnkit-my-{kind}"
        res = CliRunner().invoke(cli, ["plugin", "new", f"my-{kind}", "--kind", kind, "--out", str(root)])
        assert res.exit_code == 0, res.output
        roots.append(root)
        ep = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"]["snnkit"]
        assert ep == {f"snnkit-my-{kind}": f"snnkit_my_{kind}.plugin"}
    # the generated contract tests, all four packages in one pytest run
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, roots)), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                          *(str(r / "tests") for r in roots)], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout and "failed" not in run.stdout
    # each entry-point module registers its component
    sys.path[:0] = [str(r) for r in roots]
    try:
        for kind in KINDS:
            module = importlib.import_module(f"snnkit_my_{kind}.plugin")
            fresh_plugins.register_plugin(module, name=f"snnkit-my-{kind}")
            assert fresh_plugins.get_registry().get(kind, f"my-{kind}").name == f"my-{kind}"
            fresh_plugins.unregister_plugin(f"snnkit-my-{kind}")
    finally:
        del sys.path[: len(roots)]
        for m in [m for m in sys.modules if m.startswith("snnkit_my_")]:
            del sys.modules[m]


@pytest.mark.parametrize("args, message", [
    (["plugin", "new", "My_Thing", "--kind", "neuron"], "lower-case"),
    (["plugin", "new", "thing", "--kind", "optimizer"], "optimizer"),
])
def test_bad_names_and_kinds_are_refused(args, message, tmp_path):
    res = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and message in res.output


def test_an_existing_folder_is_not_overwritten(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["plugin", "new", "thing", "--kind", "rule", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "already exists" in res.output
    assert (tmp_path / "keep.txt").read_text() == "mine" and not (tmp_path / "pyproject.toml").exists()
