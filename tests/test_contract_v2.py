"""Contract v2: each new capability driven by a small rule, neuron or connectivity written here.

* a rule whose forward runs without autograd and that writes ``.grad`` itself (``train_step``);
* a rule that sees the labels during the forward and replaces a hidden layer's gradient at every step;
* a two-input neuron with two membranes (feedforward and recurrent input kept apart on every fast path);
* an output-layer recurrence; a one-step feedforward input delay;
* an add-on rule composed with a gradient rule's own scan; recorded neuron state in the network output;
* scan paths fixed at assembly and refused backends; compatibility by declared capability.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

from snnkit_connectivity.asrc import ASRC, SRC, Dense, DenseRecurrence
from snnkit_connectivity.scsr import FeedForward, SrSc
from snnkit_core import Batch, LearningRule, Neuron
from snnkit_core.contract.errors import IncompatibleError
from snnkit_core.contract.scan import reference_scan
from snnkit_core.contract.surrogate import spike
from snnkit_core.engine.assembly import assemble
from snnkit_neurons.lif import LIF, LIFState, lif_step
from snnkit_neurons.lif_soft import LIFSoft
from snnkit_rules.bptt import BPTT
from snnkit_rules.tssl_bp import TSSLBP


def _batch(T=12, B=5, C=4, K=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, C, generator=g) < 0.4).to(dtype) * 3
    return Batch(x, torch.randint(0, K, (B,), generator=g), torch.arange(B))


# ------------------------------------------------------------------ a rule that writes .grad itself


class DeltaReadout(LearningRule):
    """Trains only the linear readout, by a hand-derived gradient, with the forward under no_grad."""

    name = "delta-readout"
    readout = "linear"

    def loss(self, output, target):
        return F.cross_entropy(output.logits, target)

    def train_step(self, network, batch, optimizer):
        with torch.no_grad():  # no autograd graph at all
            out = network(batch.x)
            loss = self.loss(out, batch.y)
            if optimizer is None:
                return loss, out.logits
            # logits = Σ_t (W h[t] + b)  =>  ∂L/∂W = eᵀ Σ_t h[t] / B,  ∂L/∂b = T Σ_B e / B,  e = softmax - onehot
            e = torch.softmax(out.logits, 1) - F.one_hot(batch.y, out.logits.shape[1]).to(out.logits)
            T, B = batch.x.shape[:2]
            optimizer.zero_grad(set_to_none=True)
            network.output.weight.grad = e.t() @ out.hidden[-1].y.sum(0) / B
            network.output.bias.grad = T * e.sum(0) / B
            optimizer.step()
            network.after_step()
        return loss, out.logits


def test_a_rule_without_autograd_writes_grad_itself():
    rule = DeltaReadout()
    net = assemble(LIFSoft, FeedForward(), [rule], input_size=4, num_classes=3, hidden=(6,), seed=0, weight_scale=3.0)
    batch = _batch()
    # the oracle: autograd's gradient of the same loss with respect to the readout
    ref = copy.deepcopy(net)
    F.cross_entropy(ref(batch.x).logits, batch.y).backward()
    w0, hidden0 = net.output.weight.detach().clone(), net.layers[0].ff.weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss, logits = rule.train_step(net, batch, opt)
    torch.testing.assert_close(net.output.weight.grad, ref.output.weight.grad)
    torch.testing.assert_close(net.output.bias.grad, ref.output.bias.grad)
    torch.testing.assert_close(net.output.weight.detach(), w0 - 0.1 * ref.output.weight.grad)
    assert net.layers[0].ff.weight.grad is None and torch.equal(net.layers[0].ff.weight.detach(), hidden0)
    assert logits.shape == (5, 3) and not loss.requires_grad


# ------------------------------------------------ a rule that sees the labels during the forward


class _Replace(torch.autograd.Function):
    """Identity forward; the backward returns ``g`` whatever arrives (the rule's per-step gradient)."""

    @staticmethod
    def forward(ctx, y, g):
        ctx.save_for_backward(g)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        (g,) = ctx.saved_tensors
        return g, None


class LabelProjection(BPTT):
    """BPTT, except hidden layer 0's gradient is replaced at every step t by P[t] onehot(y) (reward-propagation
    style)."""

    name = "label-projection"

    def __init__(self, **params):
        super().__init__(**params)
        self.labels: torch.Tensor | None = None
        self.P: torch.Tensor | None = None  # (T, N, K)

    def projection(self, T):
        return self.P[:T] @ F.one_hot(self.labels, self.P.shape[2]).t().to(self.P)  # (T, N, B)

    def layer_scan(self, layer, default):
        if layer.size != 6:  # hidden layer 0 only (the test network's only 6-wide layer)
            return None

        def scan(layer, current):
            y, s = default(layer, current)[:2]
            return _Replace.apply(y, self.projection(current.shape[0]).transpose(1, 2).to(y)), s

        return scan

    def train_step(self, network, batch, optimizer):
        self.labels = batch.y  # seen by the scan while the forward runs
        return super().train_step(network, batch, optimizer)


def test_a_rule_sees_the_labels_in_the_forward_and_replaces_a_hidden_gradient_every_step():
    torch.manual_seed(1)
    rule = LabelProjection()
    rule.P = torch.randn(12, 6, 3)
    net = assemble(LIFSoft, FeedForward(), [rule], input_size=4, num_classes=3, hidden=(6, 5), seed=0, weight_scale=3.0)
    first, second = net.paths()  # wraps layer 0's default scan (fast on the CPU) only
    assert first.endswith(">rule:label-projection") and "rule:" not in second
    batch = _batch()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # keep the weights: compare gradients only
    rule.train_step(net, batch, opt)
    # oracle: layer 0's weights get exactly the gradient of Σ_t <y0[t], P[t] onehot(y)>
    ref = copy.deepcopy(net)
    cur = ref.layers[0].ff(ref.input_neuron.encode_input(batch.x))
    y0, _ = reference_scan(ref.layers[0].neuron, cur)
    g = rule.projection(12).transpose(1, 2)  # (T, B, N)
    (gw,) = torch.autograd.grad(y0, ref.layers[0].ff.weight, grad_outputs=g)
    torch.testing.assert_close(net.layers[0].ff.weight.grad, gw)
    # other labels, other gradient: the labels really reach the forward
    rule.train_step(net, Batch(batch.x, (batch.y + 1) % 3, batch.index), opt)
    assert not torch.allclose(net.layers[0].ff.weight.grad, gw)


# ---------------------------------------------------------------------- a two-input neuron


class TwoState(NamedTuple):
    uf: torch.Tensor
    ur: torch.Tensor


class TwoMembrane(Neuron):
    """Two membranes: u_f integrates the feedforward current, u_r the recurrent input; y = s = H(u_f + 0.5 u_r - 1)."""

    name = "two-membrane"
    sums_inputs = False

    def initial_state(self, batch, device, dtype):
        z = torch.zeros(batch, self.size, device=device, dtype=dtype)
        return TwoState(z, z)

    def step(self, current, state, recurrent=None):
        uf = 0.7 * state.uf + current
        ur = 0.3 * state.ur + (0 if recurrent is None else recurrent)
        s = spike(uf + 0.5 * ur - 1.0, "triangle", 1.0)
        return s, s, TwoState(uf * (1 - s), ur * (1 - s))


def _run(net, x):
    net.zero_grad()
    out = net(x)
    out.logits.pow(2).sum().backward()
    return out.logits.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]


@pytest.mark.parametrize("conn", [Dense(), SRC(skip_span=3), ASRC(max_span=4)])
def test_a_two_membrane_neuron_gets_its_two_inputs_apart_on_every_fast_path(conn):
    net = assemble(TwoMembrane, conn, [BPTT()], input_size=4, num_classes=3, hidden=(6, 5), seed=0, weight_scale=3.0)
    net.double()
    assert net.paths()[:2] == ["connectivity", "connectivity"]
    x = _batch(dtype=torch.float64).x
    fast = _run(net, x)
    ref_net = copy.deepcopy(net)
    ref_net.backend = "reference"
    ref = _run(ref_net, x)
    torch.testing.assert_close(fast[0], ref[0])
    for a, b in zip(fast[1], ref[1]):
        torch.testing.assert_close(a, b)
    assert fast[0].abs().sum() > 0

    class Summed(TwoMembrane):  # the same neuron fed one summed input: a different network
        def step(self, current, state, recurrent=None):
            return super().step(self.total_input(current, recurrent), state)

    summed = copy.deepcopy(ref_net)
    for layer in summed.spiking_layers():
        layer.neuron.__class__ = Summed
    assert not torch.equal(_run(summed, x)[0], ref[0])


# ------------------------------------------------------------ output recurrence and input delay


class Lateral(FeedForward):
    """Feedforward, plus a dense recurrence on the output layer (lateral inhibition), inputs one step late."""

    name = "lateral"
    output_recurrence = "dense"

    def __init__(self, delay=0, **params):
        super().__init__(**params)
        self.delay = delay

    def make_output_recurrence(self, size):
        rec = DenseRecurrence(size)
        with torch.no_grad():
            rec.weight.copy_(-2.0 * (1 - torch.eye(size)))  # every output neuron inhibits the others
        return rec

    def input_delay(self, layer):
        return self.delay


def test_the_output_layer_can_have_a_recurrence():
    net = assemble(LIFSoft, Lateral(), [BPTT()], input_size=4, num_classes=3, hidden=(6,), readout="spiking", seed=0,
                   weight_scale=4.0)
    x = _batch().x
    out = net(x)
    cur = net.output.ff(out.hidden[-1].y)
    y, s = reference_scan(net.output.neuron, cur, net.output.recurrence)
    torch.testing.assert_close(out.out, y)
    y_free, _ = reference_scan(net.output.neuron, cur)
    assert y_free.sum() > y.sum() > 0  # the inhibition acts
    assert out.output_trace is not None and out.traces[-1] is out.output_trace
    assert TSSLBP().check(LIF, Lateral)  # tssl-bp declares it takes no output recurrence
    with pytest.raises(IncompatibleError, match="output-layer recurrence"):
        assemble(LIF, Lateral(), [TSSLBP()], input_size=4, num_classes=3, hidden=(6,))
    with pytest.raises(IncompatibleError, match="spiking readout"):
        assemble(LIF, Lateral(), [BPTT()], input_size=4, num_classes=3, hidden=(6,), readout="linear")


def test_a_one_step_feedforward_delay():
    kw = dict(input_size=4, num_classes=3, hidden=(6,), readout="spiking", seed=0, weight_scale=4.0)
    late = assemble(LIFSoft, Lateral(delay=1), [BPTT()], **kw)
    x = _batch().x
    out = late(x)
    cur = late.layers[0].ff(x)
    shifted = torch.cat([torch.zeros_like(cur[:1]), cur[:-1]])
    y, _ = reference_scan(late.layers[0].neuron, shifted)
    torch.testing.assert_close(out.hidden[0].y, y)
    assert out.hidden[0].y[0].abs().sum() == 0  # nothing arrives at t = 0
    on_time = assemble(LIFSoft, Lateral(delay=0), [BPTT()], **kw)
    assert not torch.equal(on_time(x).hidden[0].y, out.hidden[0].y)


# ------------------------------------------------------------- composing scans; recording state


class SpikeCounter(LearningRule):
    """Add-on: wraps whatever scan runs (it calls it) and counts each layer's spikes."""

    name = "spike-counter"
    role = "addon"

    def __init__(self, **params):
        super().__init__(**params)
        self.counts: list[float] = []

    def layer_scan(self, layer, default):
        def scan(layer, current):
            res = default(layer, current)
            self.counts.append(float(res[1].sum()))
            return res

        return scan


def test_an_addon_scan_composes_with_the_gradient_rules_own_scan():
    counter = SpikeCounter()
    kw = dict(input_size=4, num_classes=3, hidden=(6, 6, 6), seed=0, weight_scale=3.0)
    net = assemble(LIF, SrSc(), [TSSLBP(), counter], **kw)
    assert net.paths() == ["rule:tssl-bp>rule:spike-counter"] * 4
    plain = assemble(LIF, SrSc(), [TSSLBP()], **kw)
    x = _batch(T=10).x
    out, ref = net(x), plain(x)
    torch.testing.assert_close(out.out, ref.out)  # the add-on called TSSL-BP's scan, unchanged
    assert counter.counts == [float(t.s.sum()) for t in ref.traces]
    # the composed network still trains through the rule's own backward
    (g_out,) = torch.autograd.grad(out.out.sum(), net.layers[0].ff.weight)
    (g_ref,) = torch.autograd.grad(ref.out.sum(), plain.layers[0].ff.weight)
    torch.testing.assert_close(g_out, g_ref)


class MembraneReader(BPTT):
    name = "membrane-reader"
    record_state = ("u_reset",)


def test_a_rule_can_ask_for_neuron_state_in_the_output():
    net = assemble(LIF, SrSc(), [MembraneReader()], input_size=4, num_classes=3, hidden=(6, 6, 6), seed=0)
    assert net.paths() == ["reference"] * 3  # recorded state needs the reference path
    out = net(_batch().x)
    assert set(out.hidden[1].extra) == {"u_reset"} and out.hidden[1].extra["u_reset"].shape == (12, 5, 6)
    assert out.input.shape == (12, 5, 4)  # the encoded (PSC-filtered) input
    with pytest.raises(IncompatibleError, match="triton"):
        assemble(LIF, SrSc(), [MembraneReader()], input_size=4, num_classes=3, hidden=(6, 6, 6), backend="triton")


# --------------------------------------------------------------------- backends and capabilities


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_a_backend_the_rules_own_scan_would_override_is_refused_at_assembly(backend):
    with pytest.raises(IncompatibleError, match=f"tssl-bp.*own scan.*--backend {backend}"):
        assemble(LIF, SrSc(), [TSSLBP()], input_size=4, num_classes=3, hidden=(6, 6, 6), backend=backend)


def test_the_scan_path_is_chosen_once_and_not_per_call():
    net = assemble(LIFSoft, SRC(skip_span=3), [BPTT()], input_size=4, num_classes=3, hidden=(6, 6), seed=0)
    plans = [layer.plan for layer in net.spiking_layers()]
    report = net.plan_report()
    net(_batch().x)
    assert all(a is b for a, b in zip([layer.plan for layer in net.spiking_layers()], plans))
    assert net.plan_report() == report and net.plan_events == []
    assert net.paths() == ["connectivity", "connectivity"]


class PSCNeuron(Neuron):
    """A third-party neuron (not named lif) that declares a PSC output, a leak, tau_s and v_th."""

    name = "my-psc"
    has_psc = True
    has_leak = True

    def __init__(self, size, **params):
        super().__init__(size, **params)
        self.tau_s, self.v_th = 4.0, 1.0
        self.register_buffer("leak", torch.full((size,), 0.9))

    def initial_state(self, batch, device, dtype):
        z = torch.zeros(batch, self.size, device=device, dtype=dtype)
        return LIFState(z, z)

    def step(self, current, state, recurrent=None):
        a, s, _, state = lif_step(self.total_input(current, recurrent), state, self.leak, self.tau_s, self.v_th)
        return a, s, state


def test_tssl_bp_trains_a_third_party_neuron_that_declares_psc_leak_and_tau_s():
    rule = TSSLBP()
    assert rule.check(PSCNeuron, SrSc) == []
    net = assemble(PSCNeuron, SrSc(), [rule], input_size=4, num_classes=3, hidden=(8, 8, 8), seed=0, weight_scale=4.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    w0 = net.layers[0].ff.weight.detach().clone()
    loss, logits = rule.train_step(net, _batch(T=10), opt)
    assert torch.isfinite(loss) and logits.shape == (5, 3)
    assert not torch.equal(net.layers[0].ff.weight.detach(), w0)
    reasons = rule.reasons(LIFSoft, None)
    assert {r.need for r in reasons} == {"has_psc", "has_leak"} and all(r.component == "neuron" for r in reasons)


# ---------------------------------------------------------------- through training and the CLI


def test_the_run_manifest_records_each_layers_scan_path_and_sample_indices_reach_the_rule(fake, tmp_path):
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import build, train

    cfg = TrainConfig(neuron="lif", conn="srsc", rules=("bptt",), dataset="tiny", hidden=(8, 8, 8), epochs=1,
                      batch_size=16, device="cpu", backend="reference")
    built = build(cfg)
    seen: list[torch.Tensor] = []
    rule = built.gradient_rule
    step = rule.train_step
    rule.train_step = lambda net, batch, opt: (opt is not None and seen.append(batch.index)) or step(net, batch, opt)
    list(train(cfg, tmp_path / "run", built=built))
    import json

    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["scan_paths"] == ["reference"] * 3
    rows = torch.cat(seen).tolist()  # one epoch of training batches: each training row once, shuffled
    assert len(rows) > 16 and len(set(rows)) == len(rows) and rows != sorted(rows)


def test_tssl_bp_with_backend_triton_fails_before_training_with_a_clear_message(tmp_path):
    from click.testing import CliRunner

    from snnkit_cli.main import cli

    res = CliRunner().invoke(
        cli,
        ["train", "--neuron", "lif", "--conn", "srsc", "--rule", "tssl-bp", "--backend", "triton", "--out",
         str(tmp_path / "run"), "--quiet"],
    )
    assert res.exit_code == 1 and "own scan" in res.output and "--backend triton" in res.output
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_info_lists_refusals_with_the_capability_each_rule_needs():
    from click.testing import CliRunner

    from snnkit_cli.main import cli

    res = CliRunner().invoke(cli, ["info", "lif-soft"])
    assert res.exit_code == 0 and "not tssl-bp: needs has_psc, has_leak" in res.output
    res = CliRunner().invoke(cli, ["info", "dense"])
    assert res.exit_code == 0 and "not tssl-bp: needs recurrence" in res.output


def test_nir_export_refuses_what_it_cannot_express_of_the_new_connectivity():
    pytest.importorskip("nir")
    from snnkit_cli.nir_export import network_to_nir

    class Late(FeedForward):
        def input_delay(self, layer):
            return 1

    late = assemble(LIF, Late(), [BPTT()], input_size=4, num_classes=3, hidden=(6,), readout="linear", seed=0)
    with pytest.raises(IncompatibleError, match="late"):
        network_to_nir(late)

    class OutputInhibition(Lateral):
        def input_delay(self, layer):
            return 0

    inhibited = assemble(
        LIF, OutputInhibition(), [BPTT()], input_size=4, num_classes=3, hidden=(6,), readout="spiking", seed=0
    )
    with pytest.raises(IncompatibleError, match="output layer"):
        network_to_nir(inhibited)
