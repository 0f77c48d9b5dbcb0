"""The docs are tested: every hook documented, every component described, the quickstart matches the README,
the CLI reference covers every built-in command and option, the plugin guide's code runs, links resolve."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

from .conftest import REPO

DOCS = REPO / "docs"
PLUGINS_MD = DOCS / "plugins.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)
#: the pages this test owns; other pages have their own owners and checks
OWN_PAGES = [
    "index.md", "quickstart.md", "concepts.md", "cli.md", "plugins.md", "rules/bptt.md", "neurons/lif.md",
    "connectivity/scsr.md", "datasets/fsdd.md",
]


def _hookspecs():
    from snnkit_core.contract import hookspecs

    return {
        name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "snnkit_spec")
    }


def test_every_hook_has_a_heading_with_its_exact_signature():
    text = PLUGINS_MD.read_text()
    specs = _hookspecs()
    assert specs, "no hookspecs found in snnkit_core.contract.hookspecs"
    for name, fn in specs.items():
        params = ", ".join(inspect.signature(fn).parameters)
        assert re.search(rf"^### {re.escape(name)}\(", text, re.M), f"docs/plugins.md has no '### {name}(' heading"
        assert f"### {name}({params})" in text, (
            f"docs/plugins.md: the heading of {name} must read '### {name}({params})'"
        )


def test_no_heading_for_a_hook_that_does_not_exist():
    documented = set(re.findall(r"^### (register_\w+)\(", PLUGINS_MD.read_text(), re.M))
    assert documented <= set(_hookspecs()), f"documented hooks that are not hookspecs: {documented - set(_hookspecs())}"


def test_every_registered_component_has_a_description(fresh_plugins):
    components = fresh_plugins.get_registry().all()
    assert components
    missing = [f"{c.kind} {c.name} (plugin {c.plugin})" for c in components if not (c.cls.description or "").strip()]
    assert not missing, f"components without a description: {missing}"


def _fenced(text: str) -> list[str]:
    return [body.strip() for _, body in FENCE.findall(text)]


def test_quickstart_commands_match_the_readme():
    quick = _fenced((DOCS / "quickstart.md").read_text())[:2]
    assert quick[0].startswith("python3 -m venv") and quick[1].startswith("python3 -m venv"), quick
    readme = REPO / "README.md"
    if not readme.exists():
        pytest.skip("README.md does not exist yet")
    shell = [b for b in _fenced(readme.read_text()) if b.startswith("python3 -m venv")][:2]
    if len(shell) < 2:
        pytest.skip("README.md does not hold the two set-up commands yet")
    assert quick == shell, "docs/quickstart.md's first two commands differ from README.md's set-up commands"


def _walk(cmd, prefix):
    import click

    yield prefix, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _walk(sub, f"{prefix} {name}")


def test_cli_reference_covers_every_command_and_option():
    from snnkit_cli.main import cli

    text = (DOCS / "cli.md").read_text()
    for path, cmd in _walk(cli, "snnkit"):
        if path != "snnkit":
            assert re.search(rf"^#+ `{re.escape(path)}", text, re.M), f"docs/cli.md has no heading for `{path}`"
        for p in cmd.params:
            for opt in p.opts if p.param_type_name == "option" else []:
                if opt.startswith("--") and opt != "--help":
                    assert f"`{opt}" in text, f"docs/cli.md does not document {path} {opt}"


def test_plugin_guide_code_runs(fresh_plugins):
    """Every ```python block of docs/plugins.md, in order, in one namespace; then the classes they define train."""
    blocks = [body for lang, body in FENCE.findall(PLUGINS_MD.read_text()) if lang.strip() == "python"]
    assert blocks
    ns: dict = {"__name__": "plugins_md"}
    for body in blocks:
        exec(compile(body, str(PLUGINS_MD), "exec"), ns)
    from snnkit_core import Connectivity, LearningRule, hookimpl
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import train

    conns = [v for v in ns.values() if isinstance(v, type) and issubclass(v, Connectivity) and v.name]
    rules = [v for v in ns.values() if isinstance(v, type) and issubclass(v, LearningRule) and v.name]
    assert conns and rules

    class Guide:
        @hookimpl
        def register_connectivity(self, register):
            for c in conns:
                register(c)

        @hookimpl
        def register_rules(self, register):
            for r in rules:
                register(r)

    from .fakeplugin import FakePlugin

    fresh_plugins.register_plugin(FakePlugin(), name="snnkit-fake")
    fresh_plugins.register_plugin(Guide(), name="snnkit-guide")
    try:
        for conn in conns:
            for rule in rules:
                cfg = TrainConfig(neuron="lif", conn=conn.name, rules=(rule.name,), dataset="tiny", hidden=(8, 8, 8),
                                  epochs=1, params={"dataset": {"n": 16}})
                torch.manual_seed(0)
                (rec,) = list(train(cfg))
                assert rec.train_loss == rec.train_loss  # finite, not NaN
    finally:
        fresh_plugins.unregister_plugin("snnkit-guide")
        fresh_plugins.unregister_plugin("snnkit-fake")


@pytest.mark.parametrize("page", OWN_PAGES)
def test_relative_links_resolve(page):
    path = DOCS / page
    text = path.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        assert (path.parent / target).exists(), f"docs/{page} links to {target}, which does not exist"


def test_lif_page_trajectory_is_what_lif_computes():
    from snnkit_neurons.lif import LIF

    text = (DOCS / "neurons" / "lif.md").read_text()
    table = next(b for lang, b in FENCE.findall(text) if lang.strip() == "text" and b.startswith("t  I"))
    rows = [[float(v) for v in line.split()] for line in table.strip().splitlines()[1:]]
    assert len(rows) >= 5
    n = LIF(1, tau_m=16.0, tau_s=8.0, v_th=1.0)
    state = n.initial_state(1, torch.device("cpu"), torch.float64)
    for t, i, u, s, u_reset, a in rows:
        prev = state
        y, spk, state = n.step(torch.full((1, 1), i, dtype=torch.float64), state)
        assert float(n.leak[0]) * float(prev.u_reset[0, 0]) + i == u, f"u at t={t:g}"
        assert (float(spk), float(state.u_reset), float(y)) == (s, u_reset, a), f"row t={t:g}"


def test_the_architecture_page_lists_every_core_module():
    """docs/architecture.md's table names every module of snnkit_core (a new module must say what it is for)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "snnkit_core").rglob("*.py"))
    missing = [m for m in modules if f"`{m}`" not in text]
    assert modules and not missing, f"docs/architecture.md does not list {missing}"
