"""NIR export: the graph read back, an independent numpy run of NIR's forward-Euler semantics, and snnTorch
running the exported graph (snnkit_cli.nir_snntorch, and snnTorch's own import where it can) with outputs and
decoded classes equal to snnkit's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

nir = pytest.importorskip("nir", reason="NIR export is the optional extra snnkit[nir]")

from snnkit_cli.main import cli  # noqa: E402
from snnkit_cli.nir_export import network_to_nir, simulate_nir  # noqa: E402
from snnkit_core.contract.errors import IncompatibleError  # noqa: E402
from snnkit_core.contract.plugins import get_registry  # noqa: E402
from snnkit_core.engine.network import Network  # noqa: E402

DT = 1e-4  # snnTorch's NIR import assumes dt = 1e-4 s (it hard-codes it), so the graph is exported with it


def _net(conn, hidden=(12, 10), readout="spiking", bias=False, seed=0, **neuron):
    torch.manual_seed(seed)
    reg = get_registry()
    lif = reg.get("neuron", neuron.pop("name", "lif"))
    params = {"tau_m": 16.0, "tau_s": 8.0, **neuron} if lif.name == "lif" else neuron
    net = Network(6, hidden, 4, lambda n: lif(n, **params), reg.get("connectivity", conn)(), readout=readout,
                  bias=bias, weight_scale=3.0)
    net.backend = "reference"
    return net.eval()


def _run(net, x):
    with torch.no_grad():
        out = net(x)
    return out


@pytest.fixture
def x():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(40, 3, 6, generator=g) < 0.3).float()  # (T, B, C) input spikes


@pytest.mark.parametrize(
    "conn,hidden", [("ff", (12, 10)), ("self", (12, 10)), ("srsc", (12, 10, 9)), ("dense", (12, 10))]
)
@pytest.mark.parametrize("readout,output", [("spiking", "spikes"), ("spiking", "psc"), ("linear", "psc")])
def test_numpy_nir_semantics_reproduce_snnkit(conn, hidden, readout, output, x, tmp_path):
    net = _net(conn, hidden, readout, bias=readout == "linear")
    with torch.no_grad():  # per-neuron leaks, as bip trains them
        for layer in net.spiking_layers():
            layer.neuron.leak.copy_(torch.empty(layer.size).uniform_(0.8, 0.97))
    out = _run(net, x)
    assert all(float(h.s.sum()) > 0 for h in out.hidden)  # the comparison is not between silent networks
    graph = network_to_nir(net, dt=DT, output=output)
    nir.write(tmp_path / "g.nir", graph)
    back = nir.read(tmp_path / "g.nir")
    assert set(back.nodes) == set(graph.nodes) and sorted(back.edges) == sorted(graph.edges)
    y = simulate_nir(back, x.double().numpy(), DT)
    if output == "spikes":
        ref = out.out_spikes.numpy()
        assert ref.sum() > 0
        np.testing.assert_array_equal(y, ref)
    else:
        np.testing.assert_allclose(y, out.out.double().numpy(), rtol=1e-5, atol=1e-5)  # PSC or readout y[t]
        assert np.array_equal(y.sum(0).argmax(-1), out.logits.argmax(1).numpy())  # the documented decoding


def test_recurrent_edges_matter(x):
    """Guard against a comparison that would pass with the recurrence ignored."""
    net = _net("self")
    a = _run(net, x).out_spikes
    with torch.no_grad():
        for layer in net.layers:
            layer.recurrence.weight.zero_()
    assert not torch.equal(a, _run(net, x).out_spikes)
    np.testing.assert_array_equal(
        simulate_nir(network_to_nir(net, dt=DT, output="spikes"), x.double().numpy(), DT),
        _run(net, x).out_spikes.numpy()
    )


@pytest.mark.parametrize("conn,hidden", [("ff", (12, 10)), ("self", (12, 10)), ("srsc", (12, 10, 9)),
                                         ("dense", (12, 10))])
@pytest.mark.parametrize("readout", ["spiking", "linear"])
@pytest.mark.parametrize("per_neuron_leak", [False, True])
def test_snntorch_runs_the_exported_graph_like_snnkit(conn, hidden, readout, per_neuron_leak, x, tmp_path):
    pytest.importorskip("snntorch", reason="the peer check needs snntorch (requirements-test.txt)")
    from snnkit_cli import nir_snntorch

    net = _net(conn, hidden, readout)
    if per_neuron_leak:  # as bip leaves them: snnTorch gets a beta per neuron
        with torch.no_grad():
            for layer in net.spiking_layers():
                layer.neuron.leak.copy_(torch.empty(layer.size).uniform_(0.8, 0.97))
    ref = _run(net, x)
    assert ref.out.abs().sum() > 0
    nir.write(tmp_path / "g.nir", network_to_nir(net, dt=1e-3))
    y = nir_snntorch.run(tmp_path / "g.nir", x)  # dt from the graph's metadata
    assert y.shape == ref.out.shape
    if readout == "spiking":  # the output layer's PSC: the same float32 operations as snnkit's
        assert torch.equal(y, ref.out), f"{int((y != ref.out).sum())} of {y.numel()} values differ"
    else:
        torch.testing.assert_close(y, ref.out, rtol=1e-5, atol=1e-5)
    assert torch.equal(nir_snntorch.decode(y), ref.logits.argmax(1))
    spikes = nir_snntorch.run(network_to_nir(net, dt=1e-3, output="spikes"), x)
    if readout == "spiking":
        assert torch.equal(spikes, ref.out_spikes) and ref.out_spikes.sum() > 0


def test_snntorchs_own_import_runs_a_feed_forward_spike_graph(x):
    """snnTorch's public import_from_nir reads feed-forward graphs without LI nodes (dt = 1e-4, hard-coded)."""
    pytest.importorskip("snntorch", reason="the peer check needs snntorch (requirements-test.txt)")
    pytest.importorskip("nirtorch")
    from snntorch.import_nir import import_from_nir

    net = _net("ff")
    ref = _run(net, x).out_spikes
    assert ref.sum() > 0
    model = import_from_nir(network_to_nir(net, dt=DT, output="spikes"))
    ys, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            r = model(x[t]) if state is None else model(x[t], state)
            r, state = r if isinstance(r, tuple) else (r, state)
            ys.append(r)
    assert torch.equal(torch.stack(ys), ref)


def test_the_snntorch_route_refuses_what_it_cannot_run(x):
    pytest.importorskip("snntorch", reason="the peer check needs snntorch (requirements-test.txt)")
    from snnkit_cli import nir_snntorch

    biased = _net("ff", bias=True)
    with torch.no_grad():
        biased.layers[0].ff.bias.fill_(0.1)
    with pytest.raises(IncompatibleError, match="v_leak"):
        nir_snntorch.run(network_to_nir(biased, dt=1e-3), x)
    graph = network_to_nir(_net("ff"), dt=1e-3)
    graph.nodes["lif0"] = nir.IF(r=np.ones(12), v_threshold=np.ones(12))
    with pytest.raises(IncompatibleError, match="'lif0' is a IF"):
        nir_snntorch.run(graph, x)


class _Rule:
    name = "stand-in"

    def __init__(self, logits):
        self.logits = logits


def test_the_rules_decoding_chooses_the_graphs_output():
    from snnkit_cli.nir_export import rule_output

    net = _net("ff")
    assert rule_output(_Rule(lambda o: o.out.sum(0)), net) == "psc"  # tssl-bp, bptt
    assert rule_output(_Rule(lambda o: o.out_spikes.sum(0)), net) == "spikes"  # st-rsbp
    with pytest.raises(IncompatibleError, match="neither"):
        rule_output(_Rule(lambda o: o.out.max(0).values), net)
    assert rule_output(_Rule(lambda o: None), _net("ff", readout="linear")) == "psc"


def test_what_nir_cannot_express_is_named():
    with pytest.raises(IncompatibleError, match="lif-soft.*soft reset"):
        network_to_nir(_net("ff", name="lif-soft"))
    with pytest.raises(IncompatibleError, match="3 steps back"):
        network_to_nir(_span_net())
    with pytest.raises(IncompatibleError, match="filter_input"):
        network_to_nir(_net("ff", filter_input=False))


def _span_net():
    reg = get_registry()
    lif = reg.get("neuron", "lif")
    conn = reg.get("connectivity", "src")(skip_span=3)
    return Network(6, (8,), 4, lambda n: lif(n), conn, readout="linear")


def test_export_cli_writes_a_readable_graph(fake, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(cli, ["train", "--dataset", "tiny", "--hidden", "8,8,8", "--epochs", "1", "--out", str(run),
                              "--quiet", "--conn", "srsc", "--rule", "tssl-bp"])
    assert res.exit_code == 0, res.output
    best = torch.load(run / "best.pt", weights_only=True)  # made to differ from the last epoch's weights
    state = best["model"] if "model" in best else best
    state["layers.1.ff.weight"] *= 0.5
    torch.save(best, run / "best.pt")
    out = tmp_path / "net.nir"
    res = runner.invoke(cli, ["export", str(run), "--format", "nir", "--out", str(out), "--dt", "1e-3"])
    assert res.exit_code == 0 and "weights: best" in res.output, res.output
    g = nir.read(out)
    assert {"input", "ff0", "lif0", "rec0", "skip0_2", "lif_out", "psc_decode", "output"} <= set(g.nodes)
    assert ("lif0", "rec0") in g.edges and ("skip0_2", "lif2") in g.edges and ("psc_decode", "output") in g.edges
    assert g.metadata["output"] == "psc" and g.metadata["weights"] == "best"  # tssl-bp sums the output PSC
    np.testing.assert_allclose(g.nodes["lif0"].tau_syn, 8 * 1e-3)  # τs = 8 steps of 1 ms
    np.testing.assert_allclose(g.nodes["ff1"].weight, state["layers.1.ff.weight"].double().numpy())  # best.pt's
    res = runner.invoke(cli, ["export", str(run), "--weights", "last", "--out", str(tmp_path / "last.nir")])
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    np.testing.assert_allclose(nir.read(tmp_path / "last.nir").nodes["ff1"].weight,
                               ck["model"]["layers.1.ff.weight"].double().numpy())
    res = runner.invoke(cli, ["export", str(run), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "directory" in res.output  # click refuses it before snnkit runs
    res = runner.invoke(cli, ["export", str(run), "--dt", "0"])
    assert res.exit_code == 2 and "--dt" in res.output
    res = runner.invoke(cli, ["export", str(run), "--weights", "best", "--out", str(tmp_path / "best.nir")])
    assert res.exit_code == 0, res.output  # the run carved a validation split, so it has best.pt
    (run / "best.pt").unlink()
    res = runner.invoke(cli, ["export", str(run), "--weights", "best"])
    assert res.exit_code == 0 and "weights: last" in res.output  # as eval: no best.pt, the last checkpoint
    res = runner.invoke(
        cli,
        ["train", "--dataset", "tiny", "--hidden", "8", "--epochs", "1", "--out", str(tmp_path / "soft"), "--quiet",
         "--neuron", "lif-soft", "--conn", "ff"],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["export", str(tmp_path / "soft")])
    assert res.exit_code == 1 and "lif-soft" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "soft" / "network.nir").exists()


@pytest.mark.parametrize("rule,conn,hidden", [("bptt", "self", "16,16"), ("tssl-bp", "srsc", "16,16,16")])
def test_snntorch_decodes_the_classes_snnkit_predicts_on_espeak_digits(rule, conn, hidden, tmp_path):
    """A tiny model trained on the shipped espeak-digits, exported by the CLI, run in snnTorch on test examples:
    the decoded classes are snnkit's (a linear readout for bptt, the output PSC for tssl-bp)."""
    pytest.importorskip("snntorch", reason="the peer check needs snntorch (requirements-test.txt)")
    from snnkit.run import open_network
    from snnkit_cli import nir_snntorch
    from snnkit_core.engine.data import indexed_batches

    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(cli, ["train", "--rule", rule, "--conn", conn, "--hidden", hidden, "--epochs", "2",
                              "--limit", "200", "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["export", str(run), "--out", str(tmp_path / "g.nir")])
    assert res.exit_code == 0, res.output
    built, net, _ = open_network(run)
    test = built.dataset.load("test").subset(64, 0)
    x, _, _ = next(iter(indexed_batches(test, 64, False, torch.Generator().manual_seed(0))))
    x = x.transpose(0, 1).float()  # (T, B, C)
    with torch.no_grad():
        ours = built.gradient_rule.logits(net(x)).argmax(1)
    theirs = nir_snntorch.decode(nir_snntorch.run(tmp_path / "g.nir", x))
    assert len(set(ours.tolist())) > 1  # not a network that says one class for everything
    assert torch.equal(theirs, ours), f"{int((theirs != ours).sum())} of {len(ours)} classes differ"
