"""`snnkit bench` runs on CPU and reports both paths with ratios measured in the same run."""

from __future__ import annotations

import json

from click.testing import CliRunner

from snnkit_cli.main import cli


def test_bench_cpu_json():
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "tiny", "--repeats", "2", "--warmup", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    (rec,) = data["results"]
    assert {"reference", "torch"} <= set(rec["paths"])
    assert rec["paths"]["reference"]["speedup_vs_reference"] == 1.0
    assert rec["lower_bound_ms"] > 0 and all(p["median_ms"] > 0 for p in rec["paths"].values())


def test_bench_unknown_workload():
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "scsr-ti64"])
    assert res.exit_code == 1 and "scsr-ti46" in res.output
