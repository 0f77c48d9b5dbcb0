"""`snnkit import-nir`: snnTorch export -> snnkit import -> snnkit export -> snnTorch, spike for spike; the
imported run evaluates, fine-tunes (--init-from) and exports; what cannot be read is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

nir = pytest.importorskip("nir", reason="NIR import is the optional extra snnkit[nir]")
snn = pytest.importorskip("snntorch", reason="the round trip needs snntorch (requirements-test.txt)")
nirtorch = pytest.importorskip("nirtorch")

from snnkit.run import open_network  # noqa: E402
from snnkit_cli import nir_snntorch  # noqa: E402
from snnkit_cli.main import cli  # noqa: E402
from snnkit_cli.nir_export import network_to_nir  # noqa: E402
from snnkit_cli.nir_import import read_graph  # noqa: E402
from snnkit_core.contract.errors import IncompatibleError  # noqa: E402

C, K = 8, 2  # the fake plugin's `tiny` dataset: 8 channels, 2 classes
DT = 1e-4  # the step snnTorch's exporter assumes


def _synaptic(n, recurrent=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    kw = dict(alpha=torch.full((n,), 0.875), beta=0.85 + 0.12 * torch.rand(n, generator=g), threshold=torch.ones(n),
              reset_mechanism="zero", init_hidden=True)
    if recurrent:  # its graph does not depend on reset_delay, which snnTorch cannot run unset here
        return snn.RSynaptic(**kw, all_to_all=False, V=torch.rand(n, generator=g) - 0.5)
    return snn.Synaptic(**kw, reset_delay=False)


def _linear(i, o, seed):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(i, o, bias=False)
    with torch.no_grad():
        lin.weight.mul_(3.0)
    return lin


def _snntorch_export(net, path):
    """snnTorch's exporter (snntorch.export_nir.export_to_nir) without its final type check, which nir 1.0
    refuses for the batch dimension of the traced sample; the Input/Output types are then written per example."""
    from snntorch.export_nir import _extract_snntorch_module

    x0 = torch.zeros(1, C)
    graph = nirtorch.extract_nir_graph(net, _extract_snntorch_module, x0, model_name="snntorch",
                                       ignore_submodules_of=[snn.RLeaky, snn.RSynaptic])
    nodes = {**graph.nodes, "input": nir.Input(input_type={"input": np.array([C])}),
             "output": nir.Output(output_type={"output": np.array([K])})}
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    return path


@pytest.fixture
def x():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(40, 3, C, generator=g) < 0.3).float()


@pytest.mark.parametrize("recurrent", [False, True])
def test_round_trip_through_snnkit_is_spike_identical(fake, recurrent, x, tmp_path):
    net = torch.nn.Sequential(_linear(C, 12, 0), _synaptic(12, recurrent, 1), _linear(12, 10, 2),
                              _synaptic(10, recurrent, 3), _linear(10, K, 4), _synaptic(K, False, 5))
    src = _snntorch_export(net, tmp_path / "snntorch.nir")
    ref = nir_snntorch.run(src, x, dt=DT)  # snnTorch's neurons on the graph snnTorch wrote
    if not recurrent:  # ... which are the snnTorch model's own spikes
        from snntorch import utils

        utils.reset(net)
        with torch.no_grad():
            assert torch.equal(torch.stack([net(x[t]) for t in range(len(x))]), ref)
    assert ref.sum() > 0 and ref.sum() < ref.numel()

    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(cli, ["import-nir", str(src), "--out", str(run), "--dataset", "tiny"])
    assert res.exit_code == 0, res.output
    assert f"conn {'self' if recurrent else 'ff'}, hidden 12,10" in res.output and "tau_s = 8 steps" in res.output
    built, network, _ = open_network(run)
    with torch.no_grad():
        out = network(x)
    assert torch.equal(out.out_spikes, ref), f"{int((out.out_spikes != ref).sum())} output spikes differ"
    assert all(h.s.sum() > 0 for h in out.hidden)

    res = runner.invoke(cli, ["export", str(run), "--out", str(tmp_path / "back.nir")])
    assert res.exit_code == 0, res.output
    assert torch.equal(nir_snntorch.decode(nir_snntorch.run(tmp_path / "back.nir", x)), out.logits.argmax(1))
    nir.write(tmp_path / "spikes.nir", network_to_nir(network, dt=DT, output="spikes"))
    assert torch.equal(nir_snntorch.run(tmp_path / "spikes.nir", x), ref)  # snnTorch again: the same spikes

    res = runner.invoke(cli, ["eval", str(run), "--no-write"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["train", "--config", str(run / "config.toml"), "--init-from", str(run), "--rule",
                              "tssl-bp", "--epochs", "1", "--out", str(tmp_path / "tuned"), "--quiet"])
    assert res.exit_code == 0, res.output  # fine-tuned with another rule from the imported weights


def test_snnkits_own_export_imports_to_the_same_network(fake, x, tmp_path):
    """srsc (skip edges) with per-neuron leaks and biases: export -> import gives back the weights and the spikes."""
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.engine.network import Network

    reg = get_registry()
    torch.manual_seed(0)
    lif = reg.get("neuron", "lif")
    net = Network(C, (12, 10, 9), K, lambda n: lif(n, tau_m=16.0, tau_s=8.0, v_th=0.6),
                  reg.get("connectivity", "srsc")(), readout="spiking", weight_scale=3.0, bias=True).eval()
    with torch.no_grad():
        for layer in net.spiking_layers():
            layer.neuron.leak.copy_(torch.empty(layer.size).uniform_(0.8, 0.97))
            layer.ff.bias.uniform_(-0.05, 0.05)
        ref = net(x)
    nir.write(tmp_path / "g.nir", network_to_nir(net, dt=1e-3))
    got = read_graph(tmp_path / "g.nir")
    assert got["conn"] == "srsc" and got["hidden"] == [12, 10, 9] and got["tau_s"] == 8 and got["v_th"] == 0.6
    assert got["bias"] and set(got["state"]) == set(net.state_dict()) - {"input_neuron.leak"}
    for key, value in got["state"].items():
        torch.testing.assert_close(value, net.state_dict()[key], rtol=1e-6, atol=1e-7, msg=key)
    res = CliRunner().invoke(cli, ["import-nir", str(tmp_path / "g.nir"), "--out", str(tmp_path / "run"),
                                   "--dataset", "tiny"])
    assert res.exit_code == 0, res.output
    _, back, _ = open_network(tmp_path / "run")
    with torch.no_grad():
        assert torch.equal(back(x).out_spikes, ref.out_spikes) and ref.out_spikes.sum() > 0


def test_what_import_cannot_read_is_named(fake, tmp_path):
    lin = nir.Linear(weight=np.ones((3, C)))

    def cuba(v_reset=0.0):
        return nir.CubaLIF(tau_syn=np.full(3, 8e-4), tau_mem=np.full(3, 16e-4), r=np.full(3, 16.0),
                           v_leak=np.zeros(3), v_threshold=np.ones(3), w_in=np.ones(3), v_reset=np.full(3, v_reset))

    def graph(**changes):
        nodes = {"input": nir.Input(input_type={"input": np.array([C])}), "w": lin, "n": cuba(),
                 "w2": nir.Linear(weight=np.ones((3, 3))), "n2": cuba(),
                 "output": nir.Output(output_type={"output": np.array([3])}), **changes}
        edges = [("input", "w"), ("w", "n"), ("n", "w2"), ("w2", "n2"), ("n2", "output")]
        nir.write(tmp_path / "g.nir", nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
        return tmp_path / "g.nir"

    with pytest.raises(IncompatibleError, match="Affine with a bias"):
        read_graph(graph(w=nir.Affine(weight=np.ones((3, C)), bias=np.ones(3))))
    with pytest.raises(IncompatibleError, match="'n' is a IF"):
        read_graph(graph(n=nir.IF(r=np.ones(3), v_threshold=np.ones(3))))
    with pytest.raises(IncompatibleError, match="v_reset"):
        read_graph(graph(n=cuba(v_reset=0.5)))
    one = {"input": nir.Input(input_type={"input": np.array([C])}), "w": lin, "n": cuba(),
           "output": nir.Output(output_type={"output": np.array([3])})}
    nir.write(tmp_path / "one.nir", nir.NIRGraph(nodes=one, edges=[("input", "w"), ("w", "n"), ("n", "output")],
                                                 type_check=False))
    with pytest.raises(IncompatibleError, match="at least one hidden layer"):
        read_graph(tmp_path / "one.nir")
    assert read_graph(graph())["classes"] == 3 and read_graph(graph())["hidden"] == [3]
    res = CliRunner().invoke(cli, ["import-nir", str(graph()), "--out", str(tmp_path / "r"), "--dataset", "tiny"])
    assert res.exit_code == 1 and "3 outputs" in res.output and "2 classes" in res.output
    assert not (tmp_path / "r").exists()
