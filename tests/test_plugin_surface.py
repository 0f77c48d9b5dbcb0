"""The declared plugin surface: docs/plugins.md's "Every member, by class" lists exactly the public members of
the contract's classes (nothing a plugin may use is found only by reading the code, and nothing listed is
gone), and every base-class method has a docstring."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from snnkit_core import ArrayData, Batch, Compatibility, Connectivity, Dataset, LearningRule, Neuron, Recurrence
from snnkit_core.contract.component import Component

PLUGINS_MD = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
CLASSES = (Component, Neuron, Recurrence, Connectivity, LearningRule, Compatibility, Batch, Dataset, ArrayData)


def _instance_members(cls) -> set[str]:
    """What ``cls.__init__`` sets on ``self``: ``self.x = ...`` and ``self.register_buffer/parameter("x", ...)``."""
    init = vars(cls).get("__init__")
    if init is None:
        return set()
    out = set()
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(init)))):
        stored = isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
        if stored and getattr(node.value, "id", "") == "self":
            out.add(node.attr)
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("register_buffer", "register_parameter")
                and node.args and isinstance(node.args[0], ast.Constant)):
            out.add(node.args[0].value)
    return out


def _code_members(cls) -> set[str]:
    return {n for n in (*vars(cls), *_instance_members(cls)) if not n.startswith("_")}


def _listed() -> dict[str, list[str]]:
    text = PLUGINS_MD.read_text()
    section = text.split("## Every member, by class", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        m = re.match(r"^- `(\w+)`: (.*)$", line)
        if m:
            out[m.group(1)] = re.findall(r"`(\w+)`", m.group(2))
    return out


def test_the_guide_lists_every_class_once():
    assert sorted(_listed()) == sorted(c.__name__ for c in CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_public_member_is_listed_and_every_listed_member_exists(cls):
    listed = _listed()[cls.__name__]
    assert len(listed) == len(set(listed)), f"{cls.__name__} lists a member twice"
    code = _code_members(cls)
    missing = sorted(code - set(listed))
    assert not missing, f"docs/plugins.md does not list {cls.__name__} members {missing}"
    gone = sorted(set(listed) - code)
    assert not gone, f"docs/plugins.md lists {cls.__name__} members that do not exist: {gone}"


def test_instance_members_are_found_in_init():
    assert {"size", "hparams", "surrogate", "leak"} <= _code_members(Neuron)
    assert {"size", "span", "weight", "mask"} <= _code_members(Recurrence)
    assert {"data_dir", "hparams"} <= _code_members(Dataset)


def test_every_listed_member_is_explained_in_a_table_or_the_text():
    text = PLUGINS_MD.read_text().split("## Every member, by class", 1)[0]
    unexplained = [f"{c}.{m}" for c, members in _listed().items() for m in members
                   if not re.search(r"[`.]" + re.escape(m) + r"\b", text)]
    assert not unexplained, f"listed but explained nowhere in docs/plugins.md: {unexplained}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_base_class_method_has_a_docstring(cls):
    undocumented = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if inspect.isfunction(fn) and not (fn.__doc__ or "").strip():
            undocumented.append(name)
    assert not undocumented, f"{cls.__name__} methods without a docstring: {undocumented}"


def test_the_check_can_fail(monkeypatch):
    """A member the code has but the guide does not list is caught, and so is a listed member that is gone."""
    monkeypatch.setattr(Batch, "extra_member", 1, raising=False)
    with pytest.raises(AssertionError, match="extra_member"):
        test_every_public_member_is_listed_and_every_listed_member_exists(Batch)
    monkeypatch.delattr(Batch, "extra_member")
    monkeypatch.setattr("tests.test_plugin_surface._code_members", lambda cls: {"x", "y"})
    with pytest.raises(AssertionError, match="do not exist: \\['index'\\]"):
        test_every_public_member_is_listed_and_every_listed_member_exists(Batch)
