"""The API reference builds from the docstrings of the stable API (scripts/api_reference.py, pdoc), and any
warning pdoc raises fails the build."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO

SCRIPT = REPO / "scripts" / "api_reference.py"

pytest.importorskip("pdoc", reason="the API reference needs pdoc (requirements-test.txt)")


def _build(tmp_path, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"import runpy, sys\n{prelude}\nsys.argv = ['api_reference.py', {str(tmp_path / 'out')!r}]\n" \
           f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_the_reference_builds_without_warnings(tmp_path):
    res = _build(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    page = (tmp_path / "out" / "snnkit.html").read_text()
    for name in ("build", "train", "load_run", "components", "Model.step", "Model.optimizer", "Run.predict"):
        assert f'id="{name}"' in page, name  # every name of the stable API has its entry
    assert "One training step as" in page  # from Model.step's docstring
    assert (tmp_path / "out" / "snnkit" / "testing.html").exists()  # the contract kit


def test_a_warning_fails_the_build(tmp_path):
    res = _build(tmp_path, "import snnkit\nsnnkit.__all__.append('not_there')")
    assert res.returncode != 0 and "not_there" in res.stderr
