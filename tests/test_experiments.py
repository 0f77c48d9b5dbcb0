"""experiments/: one sweep file per results table of docs/methods and docs/rules, and the few tools left in scripts/.

* every ``experiments/*.toml`` is a sweep file whose every configuration builds (what ``snnkit sweep --dry-run``
  checks before anything trains);
* every results table in docs/methods and docs/rules names, in its section, an experiments/ path that exists,
  and no docs page names one that does not;
* ``[[grid]]`` tables: a table whose rows are not one product is still one sweep file;
* scripts/ holds at most three development tools, each of which runs here.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from .conftest import REPO

EXPERIMENTS = REPO / "experiments"
SWEEP_FILES = sorted(EXPERIMENTS.glob("*.toml"))
TABLE_DOCS = sorted((REPO / "docs" / "methods").glob("*.md")) + sorted((REPO / "docs" / "rules").glob("*.md"))
#: a header cell that marks a table of measured results (accuracies, times, memory, gradient norms); the
#: papers' own numbers ("paper acc.") and parameter tables do not count
RESULT_HEADER = re.compile(r"(?<!paper )acc(?:\b|\.)|%|s/step|s/epoch|seconds|\bRSS\b|grad norm|P = |\bval\b|\btest\b",
                           re.IGNORECASE)
PATH = re.compile(r"experiments/[\w.{},*/-]+")


def _expand(path: str) -> list[str]:
    """``experiments/a-{x,y}.toml`` -> both names (the docs write shared prefixes with braces)."""
    parts = re.split(r"\{([^}]*)\}", path.rstrip(".,;:)`"))
    choices = [p.split(",") if i % 2 else [p] for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def _exists(path: str) -> bool:
    return bool(list(REPO.glob(path))) if "*" in path else (REPO / path).exists()


def _sections(text: str):
    """(heading, body) for every heading of a markdown page (fenced code does not start a section)."""
    heading, body, fenced = "(top)", [], False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("#") and not fenced:
            yield heading, body
            heading, body = line, []
        else:
            body.append(line)
    yield heading, body


def _result_tables(body: list[str]) -> list[str]:
    """The header rows of the results tables in a section."""
    return [line for i, line in enumerate(body) if line.startswith("|") and (i == 0 or not body[i - 1].startswith("|"))
            and RESULT_HEADER.search(line)]


def test_there_is_a_sweep_file_per_table_page():
    assert len(SWEEP_FILES) >= 10 and TABLE_DOCS


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.name)
def test_every_sweep_file_parses_and_every_configuration_builds(path):
    from snnkit_cli.sweep import grid_points, load_spec
    from snnkit_core.engine.training import build

    spec = load_spec(path)
    assert spec.search is None, "an experiments file is a grid: the table's rows, not a search"
    points = grid_points(spec, build)  # raises, naming the configuration, if one does not build
    assert points and len({p.name for p in points}) == len(points)


def test_the_dry_run_of_an_experiments_file_lists_its_runs(tmp_path):
    from snnkit_cli.main import cli

    res = CliRunner().invoke(cli, ["sweep", str(EXPERIMENTS / "scsr-ablation-espeak.toml"), "--dry-run",
                                   "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "7 configurations x 3 seeds" in res.output and res.output.count("new") == 21
    assert not (tmp_path / "s").exists()


def test_every_results_table_names_an_existing_experiments_path():
    missing = []
    for doc in TABLE_DOCS:
        for heading, body in _sections(doc.read_text(encoding="utf-8")):
            tables = _result_tables(body)
            named = [p for m in PATH.findall("\n".join(body)) for p in _expand(m)]
            if tables and not any(_exists(p) for p in named):
                missing.append(f"{doc.relative_to(REPO)} {heading!r}: {tables[0][:60]}")
    assert not missing, "results tables whose section names no existing experiments/ file:\n" + "\n".join(missing)


def test_the_detector_sees_results_tables_and_skips_parameter_tables():
    assert _result_tables(["| variant | FSDD val % (4 ep) |", "|---|---|"])
    assert _result_tables(["| conn | fast (s/step) | reference (s/step) |"])
    assert not _result_tables(["| parameter | default | meaning |"])
    assert not _result_tables(["| preset | task | lr | paper acc. |"])
    pages = {f"{d.parent.name}/{d.name}": sum(len(_result_tables(b)) for _, b in _sections(d.read_text()))
             for d in TABLE_DOCS}
    assert pages["rules/tssl-bp.md"] >= 8 and pages["methods/nrr-snn.md"] >= 10 and pages["methods/st-rsbp.md"] >= 4


def test_every_experiments_path_the_docs_name_exists():
    dangling = []
    for doc in sorted((REPO / "docs").rglob("*.md")):
        for m in PATH.findall(doc.read_text(encoding="utf-8")):
            dangling += [f"{doc.relative_to(REPO)}: {p}" for p in _expand(m) if not _exists(p)]
    assert not dangling, "\n".join(dangling)


def test_raw_records_live_beside_the_sweep_files_not_under_docs():
    assert not list((REPO / "docs").rglob("*.json")) and not list((REPO / "docs").rglob("*.jsonl"))


def test_a_grid_of_grid_tables_is_the_concatenation_of_their_products(tmp_path):
    from snnkit_cli.sweep import grid_points, load_spec

    f = tmp_path / "t.toml"
    f.write_text('seeds = [0]\n[base]\nepochs = 1\n\n[[grid]]\nlr = [0.1, 0.2]\nhidden = [[4], [8]]\n\n'
                 '[[grid]]\nrules = [["tssl-bp"]]\nneuron = ["lif"]\n')
    spec = load_spec(f)
    points = grid_points(spec)
    assert [p.settings for p in points] == [
        {"lr": 0.1, "hidden": [4]}, {"lr": 0.1, "hidden": [8]}, {"lr": 0.2, "hidden": [4]}, {"lr": 0.2, "hidden": [8]},
        {"rules": ["tssl-bp"], "neuron": "lif"}]
    assert list(spec.grid) == ["lr", "hidden", "rules", "neuron"]  # the summary's columns: every key, once
    assert points[-1].config.rules == ("tssl-bp",) and points[-1].config.lr == spec.base.lr


def test_an_empty_grid_table_is_refused(tmp_path):
    from snnkit_cli.sweep import load_spec
    from snnkit_core.contract.errors import ConfigError

    f = tmp_path / "t.toml"
    f.write_text("[base]\nepochs = 1\n\n[[grid]]\nlr = [0.1]\n\n[[grid]]\n")
    with pytest.raises(ConfigError, match="empty"):
        load_spec(f)


# ------------------------------------------------------------------------------------------ scripts/


def test_scripts_holds_at_most_three_tools():
    tools = sorted(p.name for p in (REPO / "scripts").iterdir() if p.is_file())
    assert len(tools) <= 3, tools
    assert set(tools) <= {"api_reference.py", "gpu_check.sh", "nir_peer_check.py"}, "a new tool needs a test here"


def test_nothing_names_a_retired_script_as_a_file_to_run():
    """A path ``scripts/NAME`` in the docs, tests or code names a tool in scripts/ or in a plugin's scripts/."""
    tools = [*(REPO / "scripts").iterdir(), *REPO.glob("plugins/*/scripts/*"), *(REPO / "tests").iterdir()]
    kept = {p.name for p in tools}
    rx = re.compile(r"(?<![\w-])scripts/([\w.-]+\.(?:py|sh))")
    roots = [REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "tests").glob("*.py"),
             *REPO.glob("snnkit_core/**/*.py"), *REPO.glob("cli/**/*.py"), *REPO.glob("plugins/*/snnkit_*/*.py")]
    bad = [f"{p.relative_to(REPO)}: scripts/{m}" for p in roots for m in rx.findall(p.read_text(encoding="utf-8"))
           if m not in kept and not (p.parent.name == "tests" and p.name == "test_experiments.py")]
    assert not bad, "\n".join(bad)


def test_gpu_check_is_valid_bash():
    res = subprocess.run(["bash", "-n", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_nir_peer_check_answers_its_help():
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "nir_peer_check.py"), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "RUN_DIR" in res.stdout.upper(), res.stderr[-2000:]


def test_reliability_sweep_runs_one_case():
    res = subprocess.run([sys.executable, str(REPO / "tests" / "reliability_sweep.py"), "--only",
                          "argv parsing at import"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "1 inputs" in res.stdout and "handled 1" in res.stdout
