"""The declared plugin surface: every member of the base classes has a docstring and is documented in
docs/plugins.md, so nothing a plugin may use is found only by reading the code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from snnkit_core.contract.interfaces import Connectivity, Dataset, LearningRule, Neuron, Recurrence, Component

PLUGINS_MD = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
BASES = (Component, Neuron, Recurrence, Connectivity, LearningRule, Dataset)
#: members set in ``__init__`` rather than in the class body
INSTANCE = {Neuron: ("leak", "size", "hparams"), Recurrence: ("weight", "mask", "span", "size")}


def _members(cls) -> list[str]:
    return [n for n in vars(cls) if not n.startswith("_")] + list(INSTANCE.get(cls, ()))


@pytest.mark.parametrize("cls", BASES, ids=lambda c: c.__name__)
def test_every_base_class_member_is_documented_in_the_plugin_guide(cls):
    text = PLUGINS_MD.read_text()
    missing = [m for m in _members(cls) if not re.search(r"[`.]" + re.escape(m) + r"\b", text)]
    assert not missing, f"docs/plugins.md does not document {cls.__name__} members {missing}"


@pytest.mark.parametrize("cls", BASES, ids=lambda c: c.__name__)
def test_every_base_class_method_has_a_docstring(cls):
    undocumented = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if inspect.isfunction(fn) and not (fn.__doc__ or "").strip():
            undocumented.append(name)
    assert not undocumented, f"{cls.__name__} methods without a docstring: {undocumented}"


def test_the_check_can_fail():
    """A member the guide does not mention is caught (the regex is not vacuous)."""
    assert not re.search(r"[`.]" + re.escape("no_such_member") + r"\b", PLUGINS_MD.read_text())
