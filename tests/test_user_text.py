"""User-facing text cites only what a user has: no development-only paths, spec sections or issue numbers.

Scanned: README.md, docs/**/*.md and the shipped presets (docs/results holds raw records and is skipped), every .py of
the library, the CLI, the first-party plugins and the examples, and ``snnkit info NAME`` for every registered
component (its description, docstring and parameter help).
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from .conftest import REPO

#: what a user cannot follow: this repository's development set-up, its spec file's sections, its issue numbers
FORBIDDEN = {
    "specs/algorithms": re.compile(r"specs/algorithms"),
    "algorithms.md": re.compile(r"algorithms\.md"),
    "../shared": re.compile(r"\.\./shared"),
    "shared/datasets": re.compile(r"shared/datasets"),
    "a /work/ path of the development machine": re.compile(r"(?<![\w.])/work/"),
    "a § section": re.compile("§"),
    "an issue number": re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE),
}
PY_ROOTS = ["snnkit_core", "snnkit", "cli", "plugins/*/snnkit_*", "examples/*/snnkit_*"]


def _user_files() -> list:
    files = [REPO / "README.md"] if (REPO / "README.md").exists() else []
    docs = REPO / "docs"
    files += [p for p in sorted(docs.rglob("*.md")) if "results" not in p.relative_to(docs).parts]
    files += sorted((REPO / "cli" / "snnkit_cli" / "presets").glob("*.toml"))
    for pattern in PY_ROOTS:
        for root in sorted(REPO.glob(pattern)):
            files += [p for p in sorted(root.rglob("*.py")) if "tests" not in p.relative_to(root).parts]
    return files


def _offences(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        found += [f"{number}: {what}: {line.strip()[:100]}" for what, rx in FORBIDDEN.items() if rx.search(line)]
    return found


def test_the_scan_covers_every_user_facing_area():
    rel = {str(p.relative_to(REPO)) for p in _user_files()}
    for must in ("README.md", "docs/rules/tssl-bp.md", "snnkit_core/contract/neuron.py", "cli/snnkit_cli/main.py",
                 "plugins/snnkit-rules/snnkit_rules/tssl_bp.py", "plugins/snnkit-neurons/snnkit_neurons/lif.py",
                 "cli/snnkit_cli/presets/scsr-fsdd.toml"):
        assert must in rel, f"{must} is not scanned"
    assert not [r for r in rel if r.startswith("docs/results/")]


@pytest.mark.parametrize("what, text, bad", [
    ("spec", "see specs/algorithms.md §2.3", True), ("issue", "(issue 9)", True), ("issue#", "Issue #14", True),
    ("path", "--data-dir ../shared/datasets", True), ("ok", "docs/rules/tssl-bp.md, 'Backward'", False),
    ("machine path", "nice /work/venv/bin/python", True), ("ok words", "issues arise when the rate is 0", False),
])
def test_the_patterns_catch_what_they_should(what, text, bad):
    assert bool(_offences(text)) is bad, what


def test_no_user_facing_file_cites_development_only_things():
    bad = {}
    for path in _user_files():
        found = _offences(path.read_text(encoding="utf-8"))
        if found:
            bad[str(path.relative_to(REPO))] = found
    assert not bad, "user-facing text cites what users do not have (cite a docs/ page and heading instead):\n" + \
        "\n".join(f"{f}:{line}" for f, lines in bad.items() for line in lines)


def test_snnkit_info_of_every_component_cites_only_what_users_have(fresh_plugins):
    from snnkit_cli.main import cli

    components = fresh_plugins.get_registry().all()
    assert len(components) >= 10
    runner = CliRunner()
    bad = {}
    for comp in components:
        res = runner.invoke(cli, ["info", comp.name, "--kind", comp.kind], env={"COLUMNS": "200"})
        assert res.exit_code == 0, (comp.name, res.output)
        assert comp.name in res.output
        found = _offences(res.output)
        if found:
            bad[f"{comp.kind} {comp.name}"] = found
    assert not bad, f"`snnkit info` prints citations users cannot follow: {bad}"


#: the method and component pages that the code's docstrings now cite by page and heading
CITED_DIRS = ["rules", "neurons", "connectivity", "methods", "datasets"]
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")
HEADING = re.compile(r"^#+\s+(.*)$", re.MULTILINE)
FENCED = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _anchors(path) -> set[str]:
    """GitHub-style heading anchors: lower case, punctuation other than '-' and '_' dropped, spaces -> '-'."""
    text = FENCED.sub("", path.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in HEADING.findall(text)}


@pytest.mark.parametrize("folder", CITED_DIRS)
def test_links_and_heading_anchors_of_the_cited_pages_resolve(folder):
    pages = sorted((REPO / "docs" / folder).glob("*.md"))
    assert pages
    for page in pages:
        for target, anchor in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            dest = page.parent / target if target else page
            assert dest.exists(), f"{page.relative_to(REPO)} links to {target}, which does not exist"
            if anchor and dest.suffix == ".md":
                assert anchor in _anchors(dest), f"{page.relative_to(REPO)}: {dest.name} has no heading #{anchor}"


CITED_HEADINGS = re.compile(r"(docs/[\w/.-]+\.md),? \(?['\"]([^'\"]+)['\"]")


def test_every_page_and_heading_the_code_cites_exists():
    """A docstring that says "docs/rules/tssl-bp.md, 'Backward'" names a page and a heading that exist."""
    cited = 0
    for path in _user_files():
        if path.suffix != ".py":
            continue
        text = path.read_text(encoding="utf-8")
        for page in set(re.findall(r"docs/[\w/.-]+\.md", text)):
            assert (REPO / page).exists(), f"{path.relative_to(REPO)} cites {page}, which does not exist"
        for page, heading in CITED_HEADINGS.findall(text):
            headings = HEADING.findall((REPO / page).read_text(encoding="utf-8"))
            assert any(h.startswith(heading) for h in headings), f"{path.relative_to(REPO)}: {page} has no '{heading}'"
            cited += 1
    assert cited >= 5
