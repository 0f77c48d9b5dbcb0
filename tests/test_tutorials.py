"""The tutorials (docs/tutorials/*.md) run as written, each in a fresh folder.

What runs: ```python blocks, in order, in one namespace (``tmp`` is the folder); ```sh blocks, with bash, in
the folder. A block whose info string says ``file=PATH`` is written to PATH instead, and ``in=PATH`` is
checked to appear, as written, in that file (a listing of generated code). ```console and ```text blocks are
shown, not run. Commands run in a virtual environment layered on this one: `pip install` there installs
into it (never into this environment), and `snnkit`, `pytest` and `pip` are this Python's, run in it.
"""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

TUTORIALS = sorted((REPO / "docs" / "tutorials").glob("*.md"))
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.S | re.M)


def _layered_venv(tmp: Path) -> dict:
    """A venv that sees this environment's packages (its own site-packages first) and the env to run in it."""
    venv = tmp / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    own = next((venv / "lib").glob("python3*/site-packages"))
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (own / "outer.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in outer))
    for cmd, module in (("snnkit", "snnkit_cli"), ("pytest", "pytest"), ("pip", "pip")):
        (venv / "bin" / cmd).write_text(f'#!/bin/sh\nexec "{venv}/bin/python" -m {module} "$@"\n')
        (venv / "bin" / cmd).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # offline and into the venv: the requirements are already there, setuptools builds without isolation
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0", SNNKIT_CACHE=str(tmp / ".cache"), OMP_NUM_THREADS="1")
    return env


def _run_sh(body: str, cwd: Path, env: dict, where: str) -> None:
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, f"{where}:\n{body}\n--- exit {res.returncode}\n{res.stdout}\n{res.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_the_tutorial_runs_as_written(page, tmp_path, monkeypatch):
    blocks = FENCE.findall(page.read_text())
    assert any(lang in ("python", "sh") for lang, _, _ in blocks), f"{page.name} has nothing to run"
    env = _layered_venv(tmp_path) if any(lang == "sh" for lang, _, _ in blocks) else None
    monkeypatch.chdir(tmp_path)
    namespace = {"tmp": tmp_path}
    for i, (lang, info, body) in enumerate(blocks):
        where = f"{page.relative_to(REPO)}, block {i + 1}"
        opts = dict(re.findall(r"(\w+)=(\S+)", info))
        if "file" in opts:
            (tmp_path / opts["file"]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / opts["file"]).write_text(body)
        elif "in" in opts:
            assert body in (tmp_path / opts["in"]).read_text(), f"{where}: not what {opts['in']} holds"
        elif lang == "python":
            exec(compile(body, where, "exec"), namespace)  # noqa: S102 - the documented example itself
        elif lang == "sh":
            _run_sh(body, tmp_path, env, where)


def test_every_tutorial_is_linked_from_the_index():
    index = (REPO / "docs" / "index.md").read_text()
    assert TUTORIALS and all(f"tutorials/{p.name}" in index for p in TUTORIALS)
