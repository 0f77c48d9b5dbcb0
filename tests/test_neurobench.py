"""``snnkit eval RUN --neurobench``: NeuroBench's metrics, computed by the neurobench package, checked against
hand counts on a tiny network, and the command end to end."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("neurobench")

import snnkit  # noqa: E402
from snnkit_cli.evaluate import evaluate_splits  # noqa: E402
from snnkit_cli.main import cli  # noqa: E402
from snnkit_cli.neurobench import measure  # noqa: E402
from snnkit_core.contract.dataset import ArrayData  # noqa: E402
from snnkit_core.contract.errors import MissingDependencyError  # noqa: E402

#: one example, T = 4 steps, 3 input channels, 0/1 spikes
X = torch.tensor([[[1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 0]]], dtype=torch.float32)


def tiny(tmp_path, neuron="lif-soft"):
    """3 inputs -> 2 hidden neurons with self-recurrence -> linear readout of 2 classes, with chosen zeros."""
    f = tmp_path / "tiny.npz"
    x = np.concatenate([X.numpy()] * 4)
    np.savez(f, x_train=x, y_train=np.array([0, 1, 0, 1]), x_test=x, y_test=np.array([0, 1, 0, 1]))
    model = snnkit.build(neuron=neuron, conn="self", rules="bptt", dataset="arrays", hidden=(2,), readout="linear",
                         params={"dataset": {"path": str(f)}})
    net = model.network
    with torch.no_grad():
        net.layers[0].ff.weight.copy_(torch.tensor([[1.5, 0.0, 0.7], [0.0, 0.0, 2.0]]))  # 3 zeros of 6
        net.layers[0].recurrence.weight.copy_(torch.tensor([0.5, 0.0]))  # 1 zero of 2
        net.output.weight.copy_(torch.tensor([[1.0, 0.0], [0.3, -1.0]]))  # 1 zero of 4
    return model


def test_metrics_against_hand_counts(tmp_path):
    model = tiny(tmp_path)
    net = model.network
    res = measure(model.built, ArrayData(X, torch.tensor([1])), batch_size=1)
    # connection sparsity: 5 zero weights of 12 connection weights (6 feedforward, 2 self, 4 readout)
    assert res["connection_sparsity"] == pytest.approx(5 / 12, abs=1e-4)
    ops = res["synaptic_operations"]
    # dense: every weight at every step: 4 x (3*2 feedforward + 2 self + 2*2 readout) = 48
    assert ops["Dense"] == 48
    # effective ACs, by hand: feedforward, per active input channel its non-zero weights (column counts 1, 0, 2):
    # t0: 1, t1: 0 + 2, t2: 1 + 0 + 2, t3: 0 -> 6; self: one per spike of neuron 0 at t-1 (neuron 1's weight is 0);
    # readout: per hidden spike its non-zero weights (columns: 2 for neuron 0, 1 for neuron 1)
    net.eval()
    with torch.no_grad():
        s = net(X.transpose(0, 1)).hidden[0].s[:, 0]  # (T, 2)
    assert float(s.sum()) > 0  # the hand count below would be vacuous without spikes
    want = 6 + float(s[:-1, 0].sum()) + float(2 * s[:, 0].sum() + s[:, 1].sum())
    assert ops["Effective_ACs"] == want and ops["Effective_MACs"] == 0  # 0/1 inputs everywhere: ACs only
    # activation sparsity: zero entries of the hidden spike trains, 4 steps x 2 neurons
    assert res["activation_sparsity"] == pytest.approx(1 - float(s.sum()) / 8)
    assert res["exact"] == "all layers"
    # footprint: the network's own parameters and buffers in bytes
    assert res["footprint_bytes"] == sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])


def test_psc_layers_are_counted_on_their_spikes(tmp_path):
    """``lif`` multiplies the PSC, which is never 0/1; the view counts the spikes (exact: the PSC filter is linear),
    so its operations are ACs and the same count as a layer whose output is its spikes."""
    model = tiny(tmp_path, neuron="lif")
    res = measure(model.built, ArrayData(X, torch.tensor([1])), batch_size=1)
    net = model.network
    net.eval()
    with torch.no_grad():
        out = net(X.transpose(0, 1))
    s = out.hidden[0].s[:, 0]
    assert not torch.equal(out.hidden[0].y, out.hidden[0].s)  # the network multiplies the PSC ...
    ops = res["synaptic_operations"]  # ... and NeuroBench sees spikes
    assert ops["Effective_MACs"] == 0 and ops["Effective_ACs"] == 6 + float(s[:-1, 0].sum() + 2 * s[:, 0].sum()
                                                                             + s[:, 1].sum())
    assert res["exact"] == "all layers"


def test_missing_neurobench_names_the_extra(tmp_path, monkeypatch):
    model = tiny(tmp_path)
    monkeypatch.setitem(sys.modules, "neurobench.benchmarks", None)
    with pytest.raises(MissingDependencyError, match=r"pip install snnkit\[neurobench\]"):
        measure(model.built, ArrayData(X, torch.tensor([1])), batch_size=1)


def test_eval_neurobench_command(tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--dataset", "espeak-digits", "--conn", "srsc", "--rule", "tssl-bp",
                                   "--hidden", "8,8,8", "--epochs", "1", "--limit", "200", "--out", str(run),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["eval", str(run), "--neurobench"])
    assert res.exit_code == 0, res.output
    assert "synaptic ops per sample: effective ACs" in res.output and "activation sparsity" in res.output
    rec = json.loads((run / "eval" / "neurobench.json").read_text())
    assert rec["split"] == "test" and rec["checkpoint"] == "best"
    assert set(rec["synaptic_operations"]) == {"Dense", "Effective_MACs", "Effective_ACs"}
    assert 0 < rec["synaptic_operations"]["Effective_ACs"] < rec["synaptic_operations"]["Dense"]
    # NeuroBench's accuracy is snnkit's own on the same split and weights
    own = evaluate_splits(run, "test", write=False)["splits"]["test"]
    assert rec["n"] == own["n"] and rec["classification_accuracy"] == pytest.approx(own["accuracy"])
    res = CliRunner().invoke(cli, ["eval", str(run), "--neurobench", "--split", "all"])
    assert res.exit_code != 0 and "one split" in res.output
