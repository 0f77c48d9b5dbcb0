"""`snnkit bench` runs on CPU and reports both paths with ratios measured in the same run."""

from __future__ import annotations

import json
import os

import pytest
import torch
from click.testing import CliRunner

from snnkit_cli.main import cli


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bench_cpu_json_reports_one_and_two_threads_by_default(restore_threads):
    res = CliRunner().invoke(
        cli, ["bench", "--device", "cpu", "--workload", "tiny", "--repeats", "2", "--warmup", "1", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["meta"]["threads"] == [1, 2]
    assert [r["threads"] for r in data["results"]] == [1, 2]  # the same workload once per thread count
    for rec in data["results"]:
        assert {"reference", "torch"} <= set(rec["paths"])
        assert rec["paths"]["reference"]["speedup_vs_reference"] == 1.0
        assert rec["lower_bound_ms"] > 0 and all(p["median_ms"] > 0 for p in rec["paths"].values())
        assert all(p["fraction_of_bound"] == pytest.approx(rec["lower_bound_ms"] / p["median_ms"])
                   for p in rec["paths"].values())
        assert rec["paths"]["reference"]["ran"] == "reference"  # each row names the scan path that ran
    env = dict(os.environ, COLUMNS="220")
    res = CliRunner(env=env).invoke(cli, ["bench", "--device", "cpu", "--workload", "tiny", "--steps", "5",
                                          "--batch", "2", "--repeats", "1", "--warmup", "0", "--threads", "2",
                                          "--threads", "1"])
    assert res.exit_code == 0, res.output
    rows = [[c.strip() for c in ln.split("│")] for ln in res.output.splitlines() if "tiny/srsc" in ln]
    assert sorted(r[3] for r in rows) == ["1", "1", "2", "2"]  # the threads column, one row per path and count


def test_interleaved_rounds_print_the_load_average_before_and_after(restore_threads, monkeypatch):
    """--rounds reports the machine's load around the measurement (a busy machine slows a step more than its
    bound), in the table's caption and in the JSON."""
    loads = iter([(1.25, 0.0, 0.0), (3.5, 0.0, 0.0)])
    monkeypatch.setattr(os, "getloadavg", lambda: next(loads))
    args = ["bench", "--device", "cpu", "--workload", "tiny", "--steps", "4", "--batch", "2", "--repeats", "1",
            "--warmup", "0", "--threads", "1", "--rounds", "2"]
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["load_average"] == [1.25, 3.5] and data["interleaved"]
    loads = iter([(0.5, 0.0, 0.0), (0.75, 0.0, 0.0)])
    res = CliRunner(env=dict(os.environ, COLUMNS="200")).invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "1-minute load average: 0.50 before, 0.75 after" in res.output


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


def test_bench_table_prints_the_fraction_for_every_row_including_rule_owned_scans(restore_threads):
    """tssl-bp refuses the reference path, so its torch row has no speed-up; the table still prints its time and
    fraction of the bound (it used to stop with a TypeError on the missing speed-up)."""
    res = CliRunner().invoke(
        cli,
        ["bench", "--device", "cpu", "--workload", "scsr-ti46", "--steps", "10", "--batch", "2", "--repeats", "1",
         "--warmup", "0", "--threads", "1", "--json"],
    )
    assert res.exit_code == 0, res.output
    rows = {r["workload"]: r for r in json.loads(res.output)["results"]}
    assert rows["scsr-ti46/tssl-bp"]["paths"]["torch"]["speedup_vs_reference"] is None
    for r in rows.values():
        assert all(p["fraction_of_bound"] > 0 for p in r["paths"].values() if "median_ms" in p)
    env = dict(os.environ, COLUMNS="200")
    res = CliRunner(env=env).invoke(cli, ["bench", "--device", "cpu", "--workload", "scsr-ti46", "--steps", "10",
                                          "--batch", "2", "--repeats", "1", "--warmup", "0", "--threads", "1"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if "rule:tssl-bp" in ln)
    cells = [c.strip() for c in line.split("│") if c.strip()]
    assert cells[-5] == "-" and float(cells[-3]) > 0  # x vs ref: none; fraction of bound: printed
    assert cells[-2:] == ["-", "-"]  # no method bound: tssl-bp has no extra work beyond the bound's


def test_asrc_has_a_method_bound_with_its_span_mixing_and_every_other_row_keeps_the_bound(restore_threads):
    """asrc's window over K past outputs is work the plain bound does not count: the method bound adds it
    (timed time-batched), both fractions are reported, and the other rows' method bound is their bound."""
    res = CliRunner().invoke(
        cli,
        ["bench", "--device", "cpu", "--workload", "src-psmnist", "--steps", "40", "--batch", "2", "--repeats", "1",
         "--warmup", "0", "--threads", "1", "--json"],
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


@pytest.mark.parametrize("group", ["alif", "nrr", "st-rsbp"])
def test_every_component_has_a_workload_that_runs_with_its_bound(group, restore_threads):
    """alif, nrr + reward-prop and st-rsbp at tiny shapes: whatever implementation the plan picks, the step runs
    and has a bound and a fraction, so a regression in any of them shows in `snnkit bench`."""
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", group, "--steps", "6", "--batch", "2",
                                   "--repeats", "1", "--warmup", "0", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    recs = json.loads(res.output)["results"]
    assert len(recs) >= 2 and recs[0]["workload"] in (f"{group}/lif-srsc-bptt", f"{group}/lif-bptt")  # its baseline
    for rec in recs:
        assert rec["workload"].startswith(group + "/") and rec["threads"] == 1
        ran = [p for p in rec["paths"].values() if "median_ms" in p]
        assert ran and rec["lower_bound_ms"] > 0
        for p in ran:
            assert p["median_ms"] > 0
            assert p["fraction_of_bound"] == pytest.approx(rec["lower_bound_ms"] / p["median_ms"])


def test_the_bound_counts_each_workloads_products():
    """A rule that sends no gradient back through the weights (reward-prop, st-rsbp) is bounded by two products per
    weight matrix, BPTT by three; reservoir's recurrence is counted on its recurrent layer only."""
    import attrs

    from snnkit_cli.bench import WORKLOADS, is_recurrent, lower_bound

    lif, nrr = WORKLOADS["nrr"]
    lif_st, st = WORKLOADS["st-rsbp"]
    assert nrr.products == st.products == 2 and lif.products == lif_st.products == WORKLOADS["alif"][1].products == 3
    # each component group's first row is lif + bptt at the component's own shape (its --rounds baseline): srsc
    # for alif and nrr, st-rsbp's own network (reservoir) for st-rsbp
    for group, conn in (("alif", "srsc"), ("nrr", "srsc"), ("st-rsbp", "reservoir")):
        first, *rest = WORKLOADS[group]
        assert (first.neuron, first.conn, first.rules) == ("lif", conn, ("bptt",))
        assert all((w.input_size, w.steps, w.batch, w.hidden) == (first.input_size, first.steps, first.batch,
                                                                   first.hidden) for w in rest)
    assert [is_recurrent(st, i) for i in range(2)] == [False, True]
    assert is_recurrent(attrs.evolve(st, params={"conn": {"layers": "all"}}), 0)
    assert all(is_recurrent(nrr, i) for i in range(3))
    big = attrs.evolve(nrr, steps=200, batch=64, hidden=(512,), input_size=512, classes=512)
    cpu = torch.device("cpu")
    two = min(lower_bound(big, cpu, float("inf"), repeats=3) for _ in range(3))
    three = min(lower_bound(attrs.evolve(big, products=3), cpu, float("inf"), repeats=3) for _ in range(3))
    assert two < three


def test_rates_of_a_trained_run_name_each_layers_input(tmp_path, restore_threads, fake):
    """`snnkit bench --rates RUN`: per spiking layer the nonzero fraction of what its weights multiply; lif-soft's
    outputs are spikes, so every layer after the first has a binary input, and the numbers are those of the
    network's own forward pass (recomputed here from the saved weights)."""
    from snnkit.run import open_for_eval
    from snnkit_cli.bench_sparse import input_rates
    from snnkit_core.engine.data import indexed_batches, to_batch
    from snnkit_core.engine.rundir import RunDir

    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--dataset", "tiny", "--neuron", "lif-soft", "--conn", "src", "--hidden",
                                   "12,12", "--epochs", "1", "--threads", "1", "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["bench", "--rates", str(run), "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    (rec,) = json.loads(res.output)["rates"]
    layers = rec["layers"]
    assert [la["layer"] for la in layers][:2] == ["layer0", "layer1"] and layers[2]["layer"] in ("output", "readout")
    assert len(layers) == 3
    assert all(la["binary"] for la in layers[1:]) and all(0 <= la["input_rate"] <= 1 for la in layers)
    one = input_rates(run, batches=1)["layers"]
    cfg = RunDir(run).config()
    built, _, _, have = open_for_eval(run, cfg.evolve(device="cpu"))
    x, y, idx = next(iter(indexed_batches(have["test"], cfg.batch_size, False, torch.Generator().manual_seed(0))))
    with torch.no_grad():
        out = built.network.eval()(to_batch(built, x, y, idx).x)
    assert one[1]["input_rate"] == pytest.approx(float((out.hidden[0].y != 0).float().mean()))
    assert one[0]["input_rate"] == pytest.approx(float((out.input != 0).float().mean()))


def test_product_sweep_reports_both_ways_and_the_event_driven_cost_follows_the_rate(restore_threads):
    from snnkit_cli.bench_sparse import product_sweep

    torch.set_num_threads(1)
    recs = product_sweep(shapes=(("s", 4000, 256, 256),), rates=(0.005, 1.0), rounds=3, repeats=2)
    assert [r["rate"] for r in recs] == [0.005, 1.0]
    for r in recs:
        assert r["x_fwd"] == pytest.approx(r["dense_fwd"] / r["event_fwd"])
        lo, hi = r["x_both_range"]
        assert lo <= r["x_both"] <= hi
    assert recs[0]["event_fwd"] * 5 < recs[1]["event_fwd"]  # 200x fewer nonzeros: far less work
    assert recs[0]["event_wgrad"] * 5 < recs[1]["event_wgrad"]


def test_spikes_group_times_the_same_network_with_each_feedforward_product(restore_threads):
    """`--workload spikes-w2/-w3`: W2/W3 with conn.spike_product dense, sparse and auto. The same network and input in
    every variant (same input rates per layer), and each variant's input maps took the way it names."""
    res = CliRunner().invoke(cli, ["bench", "--device", "cpu", "--workload", "spikes-w2", "--workload", "spikes-w3",
                                   "--steps", "8", "--batch", "2",
                                   "--repeats", "1", "--warmup", "0", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["workload"]: r["paths"]["torch"] for r in json.loads(res.output)["results"]}
    assert len(rows) == 6
    for shape in ("w2", "w3"):
        dense, sparse = rows[f"spikes-{shape}/dense"], rows[f"spikes-{shape}/sparse"]
        assert dense["input_rates"] == sparse["input_rates"] == rows[f"spikes-{shape}/auto"]["input_rates"]
        for layer in dense["describe"].values():
            assert layer["spike_product"]["sparse_calls"] == 0 and layer["spike_product"]["dense_calls"] > 0
        for layer in sparse["describe"].values():
            assert layer["spike_product"]["sparse_calls"] > 0 and layer["spike_product"]["dense_calls"] == 0
    assert rows["spikes-w3/dense"]["input_rates"][0] == pytest.approx(0.2, abs=0.05)  # binary input events
