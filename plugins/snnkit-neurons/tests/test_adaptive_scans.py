"""``alif`` and ``nrr`` on the CPU (kernels/adaptive_cpu.py: the C library and the same node's torch loop) equal
the reference step loop: identical spikes, gradients to the input and the recurrent weights within 1e-6
(float32) / 1e-12 (float64) of the largest, for every recurrence kind they take (none, alif's self term,
V S[t-k] for dense/sparse/src) and for reward-prop's replaced gradients (against the rule's hooked reference
loop)."""

from __future__ import annotations

import shutil

import pytest
import torch

from snnkit_connectivity.asrc import SkipRecurrence, dense_scan
from snnkit_connectivity.scsr import SelfRecurrence
from snnkit_connectivity.sparse import Sparse, SparseRecurrence
from snnkit_core.contract.plugins import get_registry
from snnkit_core.contract.scan import reference_scan
from snnkit_core.engine.assembly import assemble
from snnkit_neurons.alif import ALIF
from snnkit_neurons.kernels import cpu
from snnkit_neurons.nrr import NRR
from snnkit_neurons.scans import implementation
from snnkit_rules.reward_prop import RewardProp

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}

NEURONS = {"alif": ALIF, "nrr": NRR}


@pytest.fixture(params=["c-kernel", "c-per-step", "torch-loop"])
def impl(request, monkeypatch):
    """Each test with the C library's implementation (with V: the whole forward in one C call, products through
    torch's BLAS; ``c-per-step``: SNNKIT_CPU_BLAS=0, products from Python per chunk) and with the torch loop's.
    Returns the registered name."""
    get_registry()
    if request.param != "torch-loop" and cpu.lib() is None:
        if shutil.which("cc") or shutil.which("gcc"):
            pytest.fail(f"a C compiler is here but the C scans did not build: {cpu.failure}")
        pytest.skip("no C compiler: only the torch loops can run")
    if request.param == "c-per-step":
        monkeypatch.setenv("SNNKIT_CPU_BLAS", "0")
        return "c-kernel"
    return request.param


def _layer(name, rec_kind, dtype, surrogate=None, n=7, **params):
    torch.manual_seed(0)
    neuron = NEURONS[name](n, **params).to(dtype)
    if surrogate is not None:
        neuron.set_surrogate(surrogate, 1.0)
    rec = {"none": None, "self": lambda: SelfRecurrence(n, 0.5), "k1": lambda: SkipRecurrence(n, 1),
           "k3": lambda: SkipRecurrence(n, 3), "sparse": lambda: SparseRecurrence(n, 0.5, seed=3)}[rec_kind]
    rec = rec().to(dtype) if rec is not None else None
    if rec is not None and name == "nrr":
        with torch.no_grad():
            rec.weight.abs_().mul_(4.0)  # the recurrent channel fires, together with the other one at times (S = 2)
    return neuron, rec


def _cur(name, dtype, T=23, B=3, n=7):
    g = torch.Generator().manual_seed(2)
    return torch.randn(T, B, n, generator=g, dtype=dtype) * (1.5 if name == "alif" else 0.8)


def _check(ref, fast, dtype, names):
    assert torch.equal(ref[0], fast[0]), "spikes differ"
    for name, a, b in zip(names, ref[1], fast[1]):
        scale = max(1.0, a.abs().max().item())
        err = (a - b).abs().max().item()
        assert err <= TOL[dtype] * scale, f"gradient wrt {name}: {err:.3g} > {TOL[dtype]:g} x {scale:.3g}"


def _bptt(fn, cur, params):
    cur = cur.detach().requires_grad_()
    y, s = fn(cur)
    g = torch.Generator().manual_seed(1)
    loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum() + (s * torch.randn(s.shape, generator=g,
                                                                                          dtype=s.dtype)).sum()
    return s.detach(), torch.autograd.grad(loss, [cur, *params])


def _fast_scan(name, rec, impl):
    if rec is None or rec.structure == "diagonal":
        kind = "none" if rec is None else "diagonal"
        return lambda n, c: implementation(name, kind, impl).scan(n, c, rec)
    span = implementation(name, "span", impl).scan
    if isinstance(rec, SparseRecurrence):  # as the connectivity runs it: dense_scan with the planned kernel
        return lambda n, c: dense_scan(n, c, rec.effective_weight(), {"span": span})
    return lambda n, c: span(n, c, rec.weight, rec.span)


CASES = [("alif", "none"), ("alif", "self"), ("alif", "k1"), ("alif", "k3"), ("alif", "sparse"),
         ("nrr", "none"), ("nrr", "k1"), ("nrr", "k3"), ("nrr", "sparse")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,rec_kind", CASES)
def test_bptt_scan_equals_reference(impl, name, rec_kind, dtype):
    neuron, rec = _layer(name, rec_kind, dtype)
    params = [rec.weight] if rec is not None else []
    cur = _cur(name, dtype)
    ref = _bptt(lambda c: reference_scan(neuron, c, rec), cur, params)
    fast = _bptt(lambda c: _fast_scan(name, rec, impl)(neuron, c), cur, params)
    assert ref[0].sum() > 0 and (ref[0] == 0).any()
    if name == "nrr" and rec is not None:
        assert (ref[0] == 2).any(), "both channels must fire at once somewhere (S = 2)"
    _check(ref, fast, dtype, ("input", "recurrent weight"))


@pytest.mark.parametrize("surrogate", ["sigmoid", "atan", "fast-sigmoid", "rectangle", "triangle"])
@pytest.mark.parametrize("name,rec_kind,params", [("alif", "self", {"beta": 0.5}), ("nrr", "k1", {"reset": "quirk"}),
                                                  ("nrr", "sparse", {"gamma": 0.0})])
def test_bptt_scan_every_surrogate_and_variant(impl, name, rec_kind, params, surrogate):
    neuron, rec = _layer(name, rec_kind, torch.float64, surrogate, **params)
    cur = _cur(name, torch.float64)
    ref = _bptt(lambda c: reference_scan(neuron, c, rec), cur, [rec.weight])
    _check(ref, _bptt(lambda c: _fast_scan(name, rec, impl)(neuron, c), cur, [rec.weight]), torch.float64,
           ("input", "recurrent weight"))


@pytest.mark.parametrize("shape", [(1, 2, 5), (9, 1, 1), (4, 3, 600)])  # T = 1, one element, > one C block
def test_shapes_and_strided_input(impl, shape):
    T, B, n = shape
    for name in NEURONS:
        neuron, rec = _layer(name, "k1", torch.float32, n=n)
        fast = _fast_scan(name, rec, impl)
        cur = _cur(name, torch.float32, T, B, n).permute(1, 0, 2).contiguous().permute(1, 0, 2)  # not contiguous
        assert not cur.is_contiguous() or min(T, B) == 1
        ref = _bptt(lambda c, n=neuron, r=rec: reference_scan(n, c, r), cur, [rec.weight])
        _check(ref, _bptt(lambda c, n=neuron, f=fast: f(n, c), cur, [rec.weight]), torch.float32,
               ("input", "recurrent weight"))


class _Layer:
    def __init__(self, neuron, rec):
        self.neuron, self.recurrence = neuron, rec


def _reward_prop(fn, cur, rec, g, minus_h, rule):
    """(S, grads) of the rule's extra term Σ⟨s, g⟩ per spike tensor w.r.t. the input and recurrent weight."""
    cur = cur.detach().requires_grad_()
    rule._replaced = []
    y, s = fn(cur)
    params = [cur] + ([rec.weight] if rec is not None else [])
    return s.detach(), torch.autograd.grad(sum(rule._replaced), params)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("minus_h", [False, True])
@pytest.mark.parametrize("name,rec_kind,params", [("nrr", "sparse", {}), ("nrr", "sparse", {"reset": "quirk"}),
                                                  ("nrr", "none", {}), ("alif", "none", {}), ("alif", "self", {}),
                                                  ("alif", "sparse", {})])
def test_reward_prop_scan_equals_the_hooked_reference(impl, name, rec_kind, params, minus_h, dtype):
    """The rule's replaced gradients through the implementation of kind reward-prop equal its hooked loop."""
    neuron, rec = _layer(name, rec_kind, dtype, **params)
    layer = _Layer(neuron, rec)
    cur = _cur(name, dtype)
    g = torch.randn(cur.shape, generator=torch.Generator().manual_seed(5), dtype=dtype)
    rule = RewardProp(minus_h=minus_h)
    fast_impl = implementation(name, "reward-prop", impl)
    assert fast_impl.accepts(layer) is None
    ref = _reward_prop(lambda c: rule.reference_scan(layer, c, g, minus_h), cur, rec, g, minus_h, rule)

    def fast(c):
        y, s, z = fast_impl.scan(layer, c, g, minus_h)
        rule._replaced.append(z)
        return y, s

    got = _reward_prop(fast, cur, rec, g, minus_h, rule)
    assert ref[0].sum() > 0 and (ref[0] == 0).any()
    if name == "nrr" and rec is not None:
        assert (ref[0] == 2).any()
    _check(ref, got, dtype, ("input", "recurrent weight"))


def test_the_rule_runs_the_registered_scan_for_nrr_and_sparse():
    """In a training step reward-prop's layers are one node each, and its extra term comes from that node."""
    rule = RewardProp()
    net = assemble(NRR, Sparse(), [rule], input_size=3, num_classes=3, hidden=(6, 5), seed=0)
    rule._rp = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).float().expand(8, -1, -1)
    cur = torch.rand(8, 2, 5, requires_grad=True)
    y, s = rule._scan(net.layers[1], cur, 1)
    assert len(rule._replaced) == 1 and type(rule._replaced[0].grad_fn).__name__ == "AdaptiveScanBackward"
    assert not y.requires_grad  # the spikes feed nothing differentiable


def test_reward_prop_scan_refuses_asrc_and_src():
    get_registry()
    from snnkit_connectivity.asrc import AdaptiveSkipRecurrence

    neuron = NRR(4)
    for rec in (AdaptiveSkipRecurrence(4, 3), SkipRecurrence(4, 2)):
        why = implementation("nrr", "reward-prop", "torch-loop").accepts(_Layer(neuron, rec))
        assert why is not None and "span" in why


@pytest.mark.parametrize("name,conn", [("alif", "srsc"), ("alif", "sparse"), ("nrr", "sparse"), ("nrr", "ff")])
def test_network_plans_the_fast_scan_and_equals_the_reference_backend(name, conn):
    """Every spiking layer of an alif/nrr network runs a registered CPU implementation under --backend auto, and
    its parameter gradients equal --backend reference's."""
    from snnkit_core.engine.network import Network

    c = get_registry().get("connectivity", conn)()
    x = torch.rand(12, 3, 5, dtype=torch.float64) * 2
    grads = {}
    for backend in ("reference", "auto"):
        torch.manual_seed(0)
        net = Network(5, (6, 6, 6), 3, lambda n: NEURONS[name](n), c).double()
        net.backend = backend
        net(x).logits.sum().backward()
        grads[backend] = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
        used = {r["implementation"] for r in net.plan_report()}
        assert used == ({"reference"} if backend == "reference" else {"c-kernel"} if cpu.lib() else {"torch-loop"})
    assert grads["reference"].keys() == grads["auto"].keys()
    for k, g in grads["reference"].items():
        assert (g - grads["auto"][k]).abs().max().item() <= 1e-12 * max(1.0, g.abs().max().item()), k


def test_the_epoch_timing_script_starts():
    """plugins/snnkit-neurons/scripts/epoch_ratios.py (the measurements in docs/performance.md) parses its options."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "epoch_ratios.py"
    res = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--before" in res.stdout and "--more" in res.stdout, res.stderr
