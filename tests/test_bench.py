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
    assert rec["paths"]["reference"]["ran"] == "reference"  # each row names the scan path that ran


def test_bench_names_the_path_and_refuses_what_a_rules_own_scan_would_override():
    from snnkit_core.bench import WORKLOADS, bench_workload
    import torch

    w = next(w for w in WORKLOADS["scsr-ti46"] if w.rules == ("tssl-bp",))
    small = type(w)(w.name, 8, 10, 2, (6, 6, 6), 3, w.neuron, w.conn, w.rules)
    res = bench_workload(small, torch.device("cpu"), paths=("reference", "torch"), warmup=0, repeats=1)
    assert "own scan" in res["paths"]["reference"]["error"]
    assert res["paths"]["torch"]["ran"] == "rule:tssl-bp"


def test_bench_unknown_workload():
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "scsr-ti64"])
    assert res.exit_code == 1 and "scsr-ti46" in res.output
