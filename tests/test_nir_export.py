"""NIR export: the graph read back, an independent numpy run of NIR's forward-Euler semantics, and snnTorch's
NIR import running the exported graph with output spikes equal to snnkit's."""

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
@pytest.mark.parametrize("readout", ["spiking", "linear"])
def test_numpy_nir_semantics_reproduce_snnkit(conn, hidden, readout, x, tmp_path):
    net = _net(conn, hidden, readout, bias=readout == "linear")
    with torch.no_grad():  # per-neuron leaks, as bip trains them
        for layer in net.spiking_layers():
            layer.neuron.leak.copy_(torch.empty(layer.size).uniform_(0.8, 0.97))
    out = _run(net, x)
    assert all(float(h.s.sum()) > 0 for h in out.hidden)  # the comparison is not between silent networks
    graph = network_to_nir(net, dt=DT)
    nir.write(tmp_path / "g.nir", graph)
    back = nir.read(tmp_path / "g.nir")
    assert set(back.nodes) == set(graph.nodes) and sorted(back.edges) == sorted(graph.edges)
    y = simulate_nir(back, x.double().numpy(), DT)
    if readout == "spiking":
        ref = out.out_spikes.numpy()
        assert ref.sum() > 0
        np.testing.assert_array_equal(y, ref)
    else:
        np.testing.assert_allclose(y, out.out.double().numpy(), rtol=1e-5, atol=1e-5)


def test_recurrent_edges_matter(x):
    """Guard against a comparison that would pass with the recurrence ignored."""
    net = _net("self")
    a = _run(net, x).out_spikes
    with torch.no_grad():
        for layer in net.layers:
            layer.recurrence.weight.zero_()
    assert not torch.equal(a, _run(net, x).out_spikes)
    np.testing.assert_array_equal(
        simulate_nir(network_to_nir(net, dt=DT), x.double().numpy(), DT), _run(net, x).out_spikes.numpy()
    )


def _snntorch_run(graph, x, recurrent: bool):
    """Run ``graph`` with snnTorch's NIR import, one step at a time; returns output spikes (T, B, K)."""
    pytest.importorskip("snntorch", reason="the peer check needs snntorch (requirements-test.txt)")
    nirtorch = pytest.importorskip("nirtorch")
    if recurrent:
        # snnTorch 1.0's import_from_nir first folds each LIF<->W loop into a sub-graph, which nirtorch 2.6 then
        # fails to build (AttributeError: 'GraphModule' object has no attribute 'items'); its own per-node
        # conversion under nirtorch's interpreter (which runs recurrent edges with the previous step's output)
        # is what we run instead
        import nir as _nir
        from snntorch.import_nir import _nir_to_snntorch_module

        node_map = {
            t: (lambda n: _nir_to_snntorch_module(n, init_hidden=True))
            for t in (_nir.Linear, _nir.Affine, _nir.CubaLIF)
        }
        model = nirtorch.nir_to_torch(graph, node_map)
    else:
        from snntorch.import_nir import import_from_nir

        model = import_from_nir(graph)
    ys, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            r = model(x[t]) if state is None else model(x[t], state)
            if isinstance(r, tuple):
                r, state = r
            ys.append(r)
    return torch.stack(ys)


@pytest.mark.parametrize("conn,hidden", [("ff", (12, 10)), ("self", (12, 10)), ("srsc", (12, 10, 9))])
@pytest.mark.parametrize("per_neuron_leak", [False, True])
def test_snntorch_runs_the_exported_graph_with_equal_output_spikes(conn, hidden, per_neuron_leak, x, tmp_path):
    net = _net(conn, hidden)
    if per_neuron_leak:  # as bip leaves them: snnTorch gets a beta per neuron
        with torch.no_grad():
            for layer in net.spiking_layers():
                layer.neuron.leak.copy_(torch.empty(layer.size).uniform_(0.8, 0.97))
    ref = _run(net, x).out_spikes
    assert ref.sum() > 0
    nir.write(tmp_path / "g.nir", network_to_nir(net, dt=DT))
    y = _snntorch_run(nir.read(tmp_path / "g.nir"), x, recurrent=conn != "ff")
    assert y.shape == ref.shape
    assert torch.equal(y, ref), f"{int((y != ref).sum())} of {y.numel()} output spikes differ"


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
    out = tmp_path / "net.nir"
    res = runner.invoke(cli, ["export", str(run), "--format", "nir", "--out", str(out), "--dt", "1e-3"])
    assert res.exit_code == 0, res.output
    g = nir.read(out)
    assert {"input", "ff0", "lif0", "rec0", "skip0_2", "lif_out", "output"} <= set(g.nodes)
    assert ("lif0", "rec0") in g.edges and ("skip0_2", "lif2") in g.edges
    np.testing.assert_allclose(g.nodes["lif0"].tau_syn, 8 * 1e-3)  # τs = 8 steps of 1 ms
    # the exported weights are the checkpoint's
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    np.testing.assert_allclose(g.nodes["ff1"].weight, ck["model"]["layers.1.ff.weight"].double().numpy())
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
