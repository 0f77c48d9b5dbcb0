"""Shared fixtures: isolated feature cache, the ../shared datasets (skip when absent), fake plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_datasets() -> Path | None:
    """``$SNNKIT_TEST_DATA`` or ``../shared/datasets`` beside the repo, if present."""
    env = os.environ.get("SNNKIT_TEST_DATA")
    for p in ([Path(env)] if env else []) + [REPO.parent / "shared" / "datasets"]:
        if p.is_dir():
            return p
    return None


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Features are cached in a per-session folder, never in the user's home."""
    path = tmp_path_factory.mktemp("snnkit-cache")
    old = os.environ.get("SNNKIT_CACHE")
    os.environ["SNNKIT_CACHE"] = str(path)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield path
    if old is None:
        os.environ.pop("SNNKIT_CACHE", None)
    else:
        os.environ["SNNKIT_CACHE"] = old


@pytest.fixture
def shared_data():
    p = shared_datasets()
    if p is None:
        pytest.skip("../shared/datasets is not present")
    return p


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Reload plugins from scratch for the test and again afterwards."""
    from snnkit_core.contract import plugins

    plugins.reset_for_tests()
    yield plugins
    monkeypatch.undo()
    plugins.reset_for_tests()


@pytest.fixture
def fake(fresh_plugins):
    """The in-process fake plugin (toy neuron, `tiny` dataset, `picky` rule ...) registered for one test."""
    from .fakeplugin import FakePlugin

    fresh_plugins.register_plugin(FakePlugin(), name="snnkit-fake", version="9.9")
    try:
        yield fresh_plugins
    finally:
        fresh_plugins.unregister_plugin("snnkit-fake")
