"""The five distributions build wheels, and `pip install snnkit` of those wheels alone, in a fresh virtual
environment and without the checkout, gives a working `snnkit train`, `snnkit presets`, the C scans and the API.

How the fresh environment gets its third-party packages without a download (torch alone is ~200 MB): the
test resolves the built wheels' own ``Requires-Dist`` (torch, numpy, click, ...) against this environment and
links exactly those distributions, and what they require in turn, into one folder that the new environment
sees through a ``.pth`` file. Nothing of snnkit is in that folder, so every snnkit module the new environment
imports comes from the wheels (checked), and a dependency the wheels forget to declare is missing there.
``pip install --no-index --find-links WHEELS`` then installs the five wheels and finds their requirements
already installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import snnkit

from .conftest import shared_datasets

REPO = Path(__file__).resolve().parents[1]
DISTS = {"snnkit": REPO, **{f"snnkit-{p}": REPO / "plugins" / f"snnkit-{p}"
                            for p in ("neurons", "connectivity", "rules", "datasets")}}
#: what a source copy leaves out: checkouts' own clutter, in-place builds (the C scans must build from the wheel)
IGNORE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "runs",
          ".data", "*.so", "tests", "docs", "examples", "scripts")
OURS = {canonicalize_name(d) for d in DISTS}

pytestmark = pytest.mark.slow


def _build_wheels(tmp: Path) -> Path:
    """``pip wheel --no-deps`` of each distribution, from a copy of its source (the checkout stays clean)."""
    wheels = tmp / "wheels"
    for name, src in DISTS.items():
        copy = tmp / "src" / name
        skip = (*IGNORE, "plugins") if src == REPO else IGNORE  # the root's copy: without the plugins' sources
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns(*skip))
        # --no-build-isolation: this environment's setuptools builds them, so the test needs no index
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(wheels), str(copy)], check=True, capture_output=True, text=True, timeout=600)
    return wheels


def _requires(metadata: str, extras=("",)) -> list[Requirement]:
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in metadata.splitlines()
            if line.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras)]


def _dependency_folder(wheels: Path, folder: Path) -> list[str]:
    """Link the installed distributions the wheels require (and theirs, transitively) into ``folder``."""
    todo = []
    for whl in wheels.glob("*.whl"):
        with zipfile.ZipFile(whl) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            todo += _requires(z.read(meta).decode(), extras=("", "test"))
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in OURS or name in seen:
            continue
        seen.add(name)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            pytest.skip(f"{req.name}, which the wheels require, is not installed here")
        todo += _requires(dist.read_text("METADATA") or "", extras=("", *req.extras))
        for top in {f.parts[0] for f in dist.files or () if f.parts[0] != ".."}:
            src = Path(dist.locate_file(top))
            if src.exists() and not (folder / top).exists() and not top.endswith(".pth"):
                (folder / top).symlink_to(src)
    return sorted(seen)


def _fresh_venv(tmp: Path, deps: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(f"{deps}\n")
    return venv


API_SCRIPT = r"""
import json, re, sys
from pathlib import Path
import snnkit, snnkit_cli, snnkit_core, snnkit_neurons, snnkit_rules, snnkit_datasets, snnkit_connectivity
from snnkit_neurons.kernels import cpu
mods = [snnkit, snnkit_cli, snnkit_core, snnkit_neurons, snnkit_rules, snnkit_datasets, snnkit_connectivity]
text = Path(sys.argv[1]).read_text()
blocks = [b for lang, b in re.findall(r"```(\w*)\n(.*?)```", text, re.S) if lang == "python"]
ns = {"tmp": Path.cwd()}
for block in blocks:
    exec(compile(block, "docs/api.md", "exec"), ns)
import snnkit.testing  # the contract kit plugins' tests subclass
print(json.dumps({"files": [m.__file__ for m in mods], "c_scans": str(cpu.path) if cpu.lib() else cpu.failure,
                  "blocks": len(blocks), "predicted": int(ns["classes"].shape[0])}))
"""


def test_the_wheels_install_and_run_without_the_checkout(tmp_path):
    wheels = _build_wheels(tmp_path)
    names = sorted(p.name for p in wheels.glob("*.whl"))
    assert [n.split("-")[:2] for n in names] == [["snnkit", snnkit.__version__]] + [
        [f"snnkit_{p}", snnkit.__version__] for p in ("connectivity", "datasets", "neurons", "rules")]
    with zipfile.ZipFile(wheels / names[0]) as z:
        meta = z.read(f"snnkit-{snnkit.__version__}.dist-info/METADATA").decode()
        assert "snnkit_cli/presets/scsr-fsdd.toml" in z.namelist()  # presets are package data
    reqs = {canonicalize_name(r.name): str(r.specifier) for r in _requires(meta)}
    assert reqs["torch"] == ">=2.2" and all(reqs[d] == f"=={snnkit.__version__}" for d in OURS - {"snnkit"})
    extras = re.findall(r"^Provides-Extra: (\S+)", meta, re.M)
    assert {"plot", "nir", "tensorboard", "all"} <= set(extras)

    deps = tmp_path / "deps"
    deps.mkdir()
    linked = _dependency_folder(wheels, deps)
    assert "torch" in linked and "click" in linked and not OURS & set(linked)
    venv = _fresh_venv(tmp_path, deps)
    py, exe = venv / "bin" / "python", venv / "bin" / "snnkit"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SNNKIT_LOAD_PLUGINS")}
    env["SNNKIT_CACHE"] = str(tmp_path / "cache")  # a first-use build of the C scans would land here, not in ~
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-index",
                          "--find-links", str(wheels), "snnkit[test]"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr

    outside = tmp_path / "elsewhere"  # no checkout here: nothing can be imported from the working directory
    outside.mkdir()

    def run(*args):
        r = subprocess.run([str(a) for a in args], cwd=outside, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
        return r.stdout

    out = run(exe, "train", "--epochs", "1", "--limit", "64", "--hidden", "8,8,8", "--out", "run", "--quiet")
    assert "test accuracy" in out and (outside / "run" / "best.pt").exists()
    assert "scsr-fsdd" in run(exe, "presets")
    root = shared_datasets()
    if root is not None and (root / "fsdd").is_dir():  # a preset on real data, where the data is here
        out = run(exe, "train", "--preset", "scsr-fsdd", "--data-dir", root, "--epochs", "1", "--limit", "64", "--out",
                  "preset", "--quiet")
        assert 'dataset = "fsdd"' in (outside / "preset" / "config.toml").read_text()
    (outside / "api.md").write_text((REPO / "docs" / "api.md").read_text())
    got = json.loads(run(py, "-c", API_SCRIPT, "api.md").strip().splitlines()[-1])
    assert all(Path(f).is_relative_to(venv) for f in got["files"]), got["files"]  # the wheels', not the checkout's
    assert Path(got["c_scans"]).is_relative_to(venv), got["c_scans"]  # built on install, into the wheel
    assert got["blocks"] == 3 and got["predicted"] > 0
