"""`snnkit bench` runs on CPU and reports both paths with ratios measured in the same run."""

from __future__ import annotations

import json

from click.testing import CliRunner

from snnkit_cli.main import cli


def test_bench_cpu_json():
    res = CliRunner().invoke(
        cli, ["bench", "--device", "cpu", "--workload", "tiny", "--repeats", "2", "--warmup", "1", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    (rec,) = data["results"]
    assert {"reference", "torch"} <= set(rec["paths"])
    assert rec["paths"]["reference"]["speedup_vs_reference"] == 1.0
    assert rec["lower_bound_ms"] > 0 and all(p["median_ms"] > 0 for p in rec["paths"].values())
    assert rec["paths"]["reference"]["ran"] == "reference"  # each row names the scan path that ran


def test_bench_names_the_path_and_refuses_what_a_rules_own_scan_would_override():
    import torch

    from snnkit_cli.bench import WORKLOADS, bench_workload

    w = next(w for w in WORKLOADS["scsr-ti46"] if w.rules == ("tssl-bp",))
    small = type(w)(w.name, 8, 10, 2, (6, 6, 6), 3, w.neuron, w.conn, w.rules)
    res = bench_workload(small, torch.device("cpu"), paths=("reference", "torch"), warmup=0, repeats=1)
    assert "own scan" in res["paths"]["reference"]["error"]
    assert res["paths"]["torch"]["ran"] == "rule:tssl-bp"


def test_bench_unknown_workload():
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "scsr-ti64"])
    assert res.exit_code == 1 and "scsr-ti46" in res.output


def test_bench_table_prints_the_fraction_for_every_row_including_rule_owned_scans():
    """tssl-bp refuses the reference path, so its torch row has no speed-up; the table still prints its time and
    fraction of the bound (it used to stop with a TypeError on the missing speed-up)."""
    res = CliRunner().invoke(
        cli,
        ["bench", "--device", "cpu", "--workload", "scsr-ti46", "--steps", "10", "--batch", "2", "--repeats", "1",
         "--warmup", "0", "--json"],
    )
    assert res.exit_code == 0, res.output
    rows = {r["workload"]: r for r in json.loads(res.output)["results"]}
    assert rows["scsr-ti46/tssl-bp"]["paths"]["torch"]["speedup_vs_reference"] is None
    for r in rows.values():
        assert all(p["fraction_of_bound"] > 0 for p in r["paths"].values() if "median_ms" in p)
    import os

    env = dict(os.environ, COLUMNS="200")
    res = CliRunner(env=env).invoke(cli, ["bench", "--device", "cpu", "--workload", "scsr-ti46", "--steps", "10",
                                          "--batch", "2", "--repeats", "1", "--warmup", "0"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if "rule:tssl-bp" in ln)
    cells = [c.strip() for c in line.split("│") if c.strip()]
    assert cells[-5] == "-" and float(cells[-3]) > 0  # x vs ref: none; fraction of bound: printed
    assert cells[-2:] == ["-", "-"]  # no method bound: tssl-bp has no extra work beyond the bound's


def test_asrc_has_a_method_bound_with_its_span_mixing_and_every_other_row_keeps_the_bound():
    """asrc's window over K past outputs is work the plain bound does not count: the method bound adds it
    (timed time-batched), both fractions are reported, and the other rows' method bound is their bound."""
    res = CliRunner().invoke(
        cli,
        ["bench", "--device", "cpu", "--workload", "src-psmnist", "--steps", "40", "--batch", "2", "--repeats", "1",
         "--warmup", "0", "--json"],
    )
    assert res.exit_code == 0, res.output
    rows = {r["workload"]: r for r in json.loads(res.output)["results"]}
    asrc, src = rows["src-psmnist/asrc"], rows["src-psmnist/src"]
    assert src["method_extra_ms"] == 0 and src["method_bound_ms"] == src["lower_bound_ms"]
    assert asrc["method_extra_ms"] > 0
    assert asrc["method_bound_ms"] == asrc["lower_bound_ms"] + asrc["method_extra_ms"]
    for p in asrc["paths"].values():
        assert abs(p["fraction_of_method_bound"] - asrc["method_bound_ms"] / p["median_ms"]) < 1e-12
        assert p["fraction_of_method_bound"] > p["fraction_of_bound"]


def test_span_mixing_time_counts_only_asrc_and_grows_with_the_span():
    import attrs
    import torch

    from snnkit_cli.bench import WORKLOADS, resize, span_mixing_time

    src, asrc = (resize(w, 64, 4) for w in WORKLOADS["src-psmnist"])
    cpu = torch.device("cpu")
    assert span_mixing_time(src, cpu) == 0.0
    short = span_mixing_time(attrs.evolve(asrc, params={"conn": {"max_span": 4}}), cpu, repeats=3)
    long = span_mixing_time(attrs.evolve(asrc, params={"conn": {"max_span": 2000}}), cpu, repeats=3)
    assert 0 < short < long
