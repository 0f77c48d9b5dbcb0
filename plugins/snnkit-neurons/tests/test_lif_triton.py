"""The fused Triton LIF scan against the torch reference, forward and every gradient.

On CPU the kernels run under Triton's interpreter (TRITON_INTERPRET=1, tiny sizes); on a CUDA machine the
compiled kernels are checked at a realistic size. Skipped when Triton is not installed.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    # Triton reads this when it is imported; snnkit only uses the interpreter where SNNKIT_TRITON_ON_CPU=1
    os.environ.setdefault("TRITON_INTERPRET", "1")
triton = pytest.importorskip("triton")

from snnkit_connectivity.scsr import SelfRecurrence  # noqa: E402
from snnkit_core.contract.scan import reference_scan  # noqa: E402
from snnkit_neurons import scans  # noqa: E402
from snnkit_neurons.lif import LIF  # noqa: E402


@pytest.fixture
def interpreter(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the compiled kernels are tested instead of the interpreter")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("triton was imported before TRITON_INTERPRET=1 could be set")
    monkeypatch.setenv("SNNKIT_TRITON_ON_CPU", "1")
    for mod in _KERNEL_MODULES:  # decorate the kernels in interpreter mode
        sys.modules.pop(mod, None)
    yield
    for mod in _KERNEL_MODULES:
        sys.modules.pop(mod, None)


_KERNEL_MODULES = ("snnkit_neurons.kernels.lif_soft_scan", "snnkit_neurons.kernels.lif_scan")


def _compare(device, T, B, N, kind, detach, has_w, seed=0):
    torch.manual_seed(seed)
    n = LIF(N, tau_m=4.0, tau_s=3.0, detach_reset=detach).to(device)
    n.set_surrogate(kind, 0.5)
    n.make_leak_trainable()
    n.leak.data = (torch.rand(N) * 0.5 + 0.4).to(device)
    rec = SelfRecurrence(N, 0.8).to(device) if has_w else None
    cur = (torch.rand(T, B, N, device=device) * 1.2).requires_grad_()
    g_y, g_s = torch.randn(T, B, N, device=device), torch.randn(T, B, N, device=device)
    params = [cur, n.leak] + ([rec.weight] if rec is not None else [])

    def run(fn):
        for p in params:
            p.grad = None
        y, s = fn()
        ((y * g_y).sum() + (s * g_s).sum()).backward()
        return [y.detach(), s.detach()] + [p.grad.clone() for p in params]

    ref = run(lambda: reference_scan(n, cur, rec))
    fused = run(lambda: scans.lif_triton(n, cur, rec))
    assert torch.equal(ref[0], fused[0]) and torch.equal(ref[1], fused[1])  # spikes and PSC identical
    assert ref[1].sum() > 0 and (1 - ref[1]).sum() > 0  # the case exercises both branches
    for r, f in zip(ref[2:], fused[2:]):
        assert torch.allclose(r, f, rtol=1e-4, atol=1e-5), (r - f).abs().max()


@pytest.mark.parametrize(
    "kind, detach, has_w",
    list(itertools.product(["sigmoid", "triangle", "fast-sigmoid", "atan", "rectangle"], [False, True], [False, True])),
)
def test_fused_lif_matches_reference_interpreter(interpreter, kind, detach, has_w):
    _compare("cpu", T=11, B=2, N=5, kind=kind, detach=detach, has_w=has_w)


@pytest.mark.parametrize("has_w", [False, True])
def test_fused_lif_spans_several_programs(interpreter, has_w):
    """B·N = 303 > BLOCK (256): two programs, the second one masked."""
    _compare("cpu", T=6, B=3, N=101, kind="sigmoid", detach=False, has_w=has_w, seed=3)


def test_reset_gradient_term_matters(interpreter):
    """A kernel that dropped the reset term would differ: compare against detach_reset on the same data."""
    torch.manual_seed(1)
    n = LIF(4, tau_m=4.0, tau_s=3.0)
    cur = (torch.rand(9, 2, 4) * 1.5).requires_grad_()
    y, _ = scans.lif_triton(n, cur, None)
    (g_attached,) = torch.autograd.grad(y.sum(), cur)
    n.hparams["detach_reset"] = True
    y, _ = scans.lif_triton(n, cur, None)
    (g_detached,) = torch.autograd.grad(y.sum(), cur)
    assert not torch.allclose(g_attached, g_detached)


def test_network_uses_the_kernel_and_backend_triton_errors_clearly(interpreter):
    from snnkit_connectivity.scsr import SrSc
    from snnkit_core.contract.errors import IncompatibleError
    from snnkit_core.engine.network import Network

    torch.manual_seed(0)
    net = Network(6, [8, 8, 8], 3, lambda k: LIF(k), SrSc(), readout="linear", weight_scale=3.0)
    x = torch.rand(10, 2, 6) * 3
    net.backend = "reference"
    ref = net(x).logits
    net.backend = "triton"
    assert torch.allclose(net(x).logits, ref, atol=1e-5)
    assert [r["implementation"] for r in net.plan_report()] == ["triton"] * 3
    with pytest.raises(IncompatibleError, match="Use --backend auto or torch"):
        net.double()  # the kernels are float32 only: refused when the plan is made for float64


# ------------------------------------------------------------------------------------------- lif-soft


def _compare_soft(device, L, B, N, kind, detach, use_gu, seed=0):
    from snnkit_neurons.lif_soft import LIFSoft, SoftScan, SoftState

    torch.manual_seed(seed)
    n = LIFSoft(N, detach_reset=detach)
    n.set_surrogate(kind, 1.0 if kind == "triangle" else 0.5)
    cur = (torch.rand(L, B, N, device=device) * 1.6 - 0.2).requires_grad_()
    u0 = (torch.rand(B, N, device=device) * 0.8).requires_grad_()
    g_s, g_u = torch.randn(L, B, N, device=device), torch.randn(B, N, device=device)

    def run(fn):
        cur.grad = u0.grad = None
        s, u = fn()
        loss = (s * g_s).sum() + ((u * g_u).sum() if use_gu else 0)
        loss.backward()
        return [s.detach(), u.detach(), cur.grad.clone(), u0.grad.clone()]

    kind_, width = n.surrogate
    ref = run(lambda: SoftScan.apply(cur, u0, n.decay, n.v_th, kind_, width, detach))
    fused = run(lambda: (lambda r: (r[1], r[2].u))(scans.soft_chunk_triton(n, cur, SoftState(u0))))
    assert torch.equal(ref[0], fused[0])  # spikes identical
    assert ref[0].sum() > 0 and (1 - ref[0]).sum() > 0
    for r, f in zip(ref[1:], fused[1:]):
        assert torch.allclose(r, f, rtol=1e-5, atol=1e-6), (r - f).abs().max()


@pytest.mark.parametrize("L", [1, 2])
def test_fused_lif_soft_short_chunks_strided_input_several_programs(interpreter, L):
    """L = 1 (dense/asrc call one step at a time), a strided input view, B·N = 360 > BLOCK."""
    from snnkit_neurons.lif_soft import LIFSoft, SoftScan, SoftState

    torch.manual_seed(2)
    n = LIFSoft(120)
    cur = (torch.rand(3, 120, L) * 2).permute(2, 0, 1)  # (L, B, N) view of a (B, N, L) tensor
    assert cur.shape == (L, 3, 120) and (L == 1 or not cur.is_contiguous())
    u0 = torch.rand(3, 120).requires_grad_()
    g = torch.randn(L, 3, 120)
    x = cur.detach().requires_grad_()
    s_ref, u_ref = SoftScan.apply(x, u0, n.decay, n.v_th, "triangle", 1.0, False)
    grads_ref = torch.autograd.grad((s_ref * g).sum() + u_ref.sum(), (x, u0))
    x2 = cur.detach().requires_grad_()
    _, s, state = scans.soft_chunk_triton(n, x2, SoftState(u0))
    grads = torch.autograd.grad((s * g).sum() + state.u.sum(), (x2, u0))
    assert torch.equal(s, s_ref) and torch.equal(state.u, u_ref)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, grads_ref))


@pytest.mark.parametrize(
    "kind, detach, use_gu",
    list(itertools.product(["triangle", "sigmoid", "rectangle"], [False, True], [False, True])),
)
def test_fused_lif_soft_chunk_matches_the_torch_chunk(interpreter, kind, detach, use_gu):
    _compare_soft("cpu", L=9, B=2, N=5, kind=kind, detach=detach, use_gu=use_gu)


def test_lif_soft_kernel_in_src_network_matches_reference_and_backend_controls_it(interpreter, monkeypatch):
    from snnkit_connectivity.asrc import SRC
    from snnkit_connectivity.scsr import SelfRecurrent
    from snnkit_core.contract.errors import IncompatibleError
    from snnkit_core.engine.network import Network
    from snnkit_neurons.lif_soft import LIFSoft

    lif_soft_scan = importlib.import_module("snnkit_neurons.kernels.lif_soft_scan")
    calls = []
    kernel = lif_soft_scan.soft_scan
    monkeypatch.setattr(lif_soft_scan, "soft_scan", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    torch.manual_seed(0)
    net = Network(3, [6, 6], 4, lambda k: LIFSoft(k), SRC(skip_span=3), readout="linear", weight_scale=2.0)
    x = torch.rand(11, 2, 3) * 2

    def run(backend):
        net.backend = backend
        net.zero_grad()
        before = len(calls)
        out = net(x).logits
        out.pow(2).sum().backward()
        used = len(calls) - before
        return out.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None], used

    ref, g_ref, used_ref = run("reference")
    fast, g_fast, used_triton = run("triton")
    _, _, used_torch = run("torch")
    assert used_ref == 0 and used_torch == 0 and used_triton == 2 * 4  # 2 layers x ceil(11/3) chunks
    run("triton")
    assert net.paths() == ["connectivity+kernel"] * 2  # the path is chosen once, at planning, and named
    assert torch.allclose(fast, ref, atol=1e-5)
    assert len(g_ref) == len(g_fast) and all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(g_ref, g_fast))
    net2 = Network(3, [6, 6], 4, lambda k: LIFSoft(k), SelfRecurrent(), readout="linear")
    with pytest.raises(IncompatibleError, match="no Triton kernel"):
        net2.backend = (
            "triton"  # the self-recurrence scan loops `step`: no kernel runs, so triton is refused when planned
        )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("has_w", [False, True])
def test_fused_lif_matches_reference_cuda(has_w):
    assert os.environ.get("TRITON_INTERPRET") != "1"
    _compare("cuda", T=100, B=16, N=400, kind="sigmoid", detach=False, has_w=has_w)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("detach", [False, True])
def test_fused_lif_soft_chunk_matches_the_torch_chunk_cuda(detach):
    assert os.environ.get("TRITON_INTERPRET") != "1"
    _compare_soft("cuda", L=12, B=64, N=128, kind="triangle", detach=detach, use_gu=True)


def test_a_failing_kernel_falls_back_under_auto_and_is_refused_under_triton(interpreter, monkeypatch):
    """A kernel that fails at run time (compile or launch): under auto the layer runs the torch scan, and the
    event is recorded on the network and warned once; under --backend triton it is an error."""
    from snnkit_connectivity.asrc import SRC
    from snnkit_core.contract.errors import IncompatibleError
    from snnkit_core.engine.network import Network
    from snnkit_neurons.lif_soft import LIFSoft

    # import_module (not `from ... import`): the fixture re-imports the kernel modules, and the package attribute
    # may still hold the previous module object
    lif_soft_scan = importlib.import_module("snnkit_neurons.kernels.lif_soft_scan")

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported GPU (simulated)")

    monkeypatch.setattr(lif_soft_scan, "soft_scan", broken)
    torch.manual_seed(0)
    net = Network(3, [6, 6], 4, lambda k: LIFSoft(k), SRC(skip_span=3), readout="linear")
    x = torch.rand(9, 2, 3) * 2
    net.backend = "torch"
    expected = net(x).logits
    net.backend = "auto"
    assert net.paths() == ["connectivity+kernel"] * 2
    with pytest.warns(RuntimeWarning, match="unsupported GPU"):
        got = net(x).logits
    assert torch.equal(got, expected)
    assert len(net.plan_events) == 2 and all("triton" in e and "unsupported GPU" in e for e in net.plan_events)
    assert torch.equal(net(x).logits, expected) and len(net.plan_events) == 2  # recorded once per layer
    net.backend = "triton"
    with pytest.raises(IncompatibleError, match="--backend triton"):
        net(x)  # no fallback under an explicit backend
