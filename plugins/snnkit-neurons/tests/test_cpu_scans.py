"""The CPU scans (kernels/cpu_scan.c via ctypes, and the same autograd nodes' torch loops) equal the reference
step loop: identical outputs and spikes, gradients within 1e-6 (float32) / 1e-12 (float64) relative to the
largest gradient of the tensor (at least 1), for every surrogate, with and without the self term / reset
detached, T = 1, odd lengths and strided inputs."""

from __future__ import annotations

import shutil

import pytest
import torch

from snnkit_cli.render import plan_notes
from snnkit_connectivity.asrc import (
    AdaptiveSkipRecurrence,
    DenseRecurrence,
    SkipRecurrence,
    chunked_skip_scan,
    dense_scan,
    mixed_span_scan,
)
from snnkit_connectivity.scsr import SelfRecurrence
from snnkit_core.contract.plugins import get_registry
from snnkit_core.contract.scan import reference_scan
from snnkit_core.contract.surrogate import KINDS
from snnkit_neurons.kernels import cpu
from snnkit_neurons.lif import LIF
from snnkit_neurons.lif_soft import LIFSoft
from snnkit_neurons.scans import implementation

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def _need_c():
    if cpu.lib() is None:
        if shutil.which("cc") or shutil.which("gcc"):
            pytest.fail(f"a C compiler is here but the C scans did not build: {cpu.failure}")
        pytest.skip("no C compiler: only the torch loops can run")


@pytest.fixture(params=["c-kernel", "torch-loop"])
def impl(request):
    """Run each test with the C library's implementation and with the torch loop's (both registered)."""
    get_registry()
    if request.param == "c-kernel":
        _need_c()
    return request.param


def scan_of(neuron: str, kind: str, name: str):
    """The ``scan`` of the registered CPU implementation ``name``."""
    return implementation(neuron, kind, name).scan


@pytest.fixture(params=["c", "c-per-step", "torch-loop"])
def asrc_impl(request, monkeypatch):
    """ASRC's node three ways: one C call per direction with the products through torch's BLAS (``c``), the C
    neuron steps with the products from Python per step (``c-per-step``, SNNKIT_CPU_BLAS=0: where torch's
    library exports no gemm), and the torch loops. Returns the implementation's name."""
    get_registry()
    if request.param == "torch-loop":
        return request.param
    _need_c()
    if request.param == "c-per-step":
        monkeypatch.setenv("SNNKIT_CPU_BLAS", "0")
        assert cpu.gemm(torch.float32) is None
    elif cpu.gemm(torch.float32) is None:
        pytest.skip("torch's library exports no sgemm_ here: the per-step products run from Python")
    return "c-kernel"


def _run(fn, cur, params, seed=1):
    cur = cur.detach().requires_grad_()
    y, s = fn(cur)
    gen = torch.Generator().manual_seed(seed)
    g_y = torch.randn(y.shape, generator=gen, dtype=y.dtype)
    g_s = torch.randn(s.shape, generator=gen, dtype=s.dtype)
    loss = (y * g_y).sum() + (s * g_s).sum()  # both outputs carry a gradient (s: the spike-count losses)
    grads = torch.autograd.grad(loss, [cur, *params])
    return y.detach(), s.detach(), grads


def _assert_same(ref, fast, dtype):
    assert torch.equal(ref[1], fast[1]), "spikes differ"
    assert torch.equal(ref[0], fast[0]), "outputs differ"
    for name, a, b in zip(("input", "leak/weight", "weight"), ref[2], fast[2]):
        scale = max(1.0, a.abs().max().item())
        err = (a - b).abs().max().item()
        assert err <= TOL[dtype] * scale, f"gradient wrt {name}: {err:.3g} > {TOL[dtype]:g} x {scale:.3g}"


def _lif(n, kind, detach, dtype, self_term):
    torch.manual_seed(0)
    neuron = LIF(n, detach_reset=detach).to(dtype)
    neuron.set_surrogate(kind, 0.5)
    neuron.make_leak_trainable()
    rec = SelfRecurrence(n, 0.5).to(dtype) if self_term else None
    params = [neuron.leak] + ([rec.weight] if rec is not None else [])
    return neuron, rec, params


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("self_term", [False, True])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_lif_scan_equals_reference(impl, kind, detach, self_term, dtype):
    neuron, rec, params = _lif(7, kind, detach, dtype, self_term)
    cur = torch.randn(23, 3, 7, dtype=dtype) * 1.5
    ref = _run(lambda c: reference_scan(neuron, c, rec), cur, params)
    fast = _run(lambda c: scan_of("lif", "diagonal" if self_term else "none", impl)(neuron, c, rec), cur, params)
    assert fast[1].sum() > 0 and (fast[1] == 0).any()  # some spikes and some silence: the reset paths are used
    _assert_same(ref, fast, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 2, 5), (9, 1, 1), (5, 3, 600), (7, 3, 343)])
def test_lif_scan_shapes(impl, shape, dtype):
    """T = 1, one element, more than one C block, and an odd B·N with T > 1: the rows of u and s start off the
    16-byte boundary the forward's non-temporal stores need (the C kernel writes their heads and tails plainly)."""
    neuron, rec, params = _lif(shape[2], "sigmoid", False, dtype, True)
    cur = torch.randn(*shape, dtype=dtype) * 1.5
    _assert_same(_run(lambda c: reference_scan(neuron, c, rec), cur, params),
                 _run(lambda c: scan_of("lif", "diagonal", impl)(neuron, c, rec), cur, params), dtype)


def test_lif_scan_strided_input(impl):
    neuron, rec, params = _lif(6, "atan", False, torch.float32, True)
    base = torch.randn(6, 3, 20) * 1.5  # (N, B, T) permuted to (T, B, N): not contiguous
    cur = base.permute(2, 1, 0)
    assert not cur.is_contiguous()
    _assert_same(_run(lambda c: reference_scan(neuron, c, rec), cur, params),
                 _run(lambda c: scan_of("lif", "diagonal", impl)(neuron, c, rec), cur, params), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_src_skip_scan_equals_reference(impl, k, kind, detach, dtype):
    torch.manual_seed(0)
    neuron = LIFSoft(6, detach_reset=detach).to(dtype)
    neuron.set_surrogate(kind, 1.0)
    rec = SkipRecurrence(6, k).to(dtype)
    cur = torch.randn(17, 3, 6, dtype=dtype) * 1.5  # 17 steps: the last chunk is partial for k = 3, 5
    ref = _run(lambda c: reference_scan(neuron, c, rec), cur, [rec.weight])
    span = scan_of("lif-soft", "span", impl)
    fast = _run(lambda c: span(neuron, c, rec.weight, k), cur, [rec.weight])
    assert fast[1].sum() > 0 and (fast[1] == 0).any()
    _assert_same(ref, fast, dtype)
    # the connectivity's chunked scan takes this path on the CPU when the plan gives it the implementation
    kernels = {"span": span}
    _assert_same(ref, _run(lambda c: chunked_skip_scan(neuron, c, rec.weight, k, kernels), cur, [rec.weight]), dtype)
    # and without one it runs its own chunks (the neuron's scan_chunk, or the "chunk" implementation)
    _assert_same(ref, _run(lambda c: chunked_skip_scan(neuron, c, rec.weight, k), cur, [rec.weight]), dtype)
    chunk = {"chunk": scan_of("lif-soft", "chunk", impl)}
    _assert_same(ref, _run(lambda c: chunked_skip_scan(neuron, c, rec.weight, k, chunk), cur, [rec.weight]), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("detach", [False, True])
def test_dense_scan_is_one_node_and_equals_reference(impl, detach, dtype):
    """dense (V y[t-1]) on lif-soft runs the span implementation (SkipScan) with k = 1: one autograd node."""
    torch.manual_seed(0)
    neuron = LIFSoft(6, detach_reset=detach).to(dtype)
    rec = DenseRecurrence(6).to(dtype)
    cur = torch.randn(17, 3, 6, dtype=dtype) * 1.5
    ref = _run(lambda c: reference_scan(neuron, c, rec), cur, [rec.weight])
    kernels = {"span": scan_of("lif-soft", "span", impl)}
    fast = _run(lambda c: dense_scan(neuron, c, rec.weight, kernels), cur, [rec.weight])
    assert fast[1].sum() > 0 and (fast[1] == 0).any()
    _assert_same(ref, fast, dtype)
    y, _ = dense_scan(neuron, cur.detach().requires_grad_(), rec.weight, kernels)
    assert type(y.grad_fn).__name__ == "SkipScanBackward"  # the whole layer is one node


def _asrc(n, K, dtype, detach=False, kind="triangle", seed=0):
    torch.manual_seed(seed)
    neuron = LIFSoft(n, detach_reset=detach).to(dtype)
    neuron.set_surrogate(kind, 1.0)
    rec = AdaptiveSkipRecurrence(n, K).to(dtype).train()
    rec.kernel.data = torch.randn(K, dtype=dtype)  # a spread-out kernel: every span contributes
    rec.tau.fill_(0.7)
    return neuron, rec


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("K,chunk,T", [(5, 8, 37), (12, 4, 37), (51, 8, 37), (1, 8, 37), (9, 8, 61)])
def test_asrc_mixed_scan_equals_reference_with_kernel_gradient(asrc_impl, K, chunk, T, detach, dtype):
    """ASRC in training on lif-soft: one autograd node (MixedScan) equal to the reference step loop, with the
    gradients to the input, V and α (a leaf here: in float32 the gradient to p = softmax⁻¹ cancels to below the
    size of α's, so it is compared in float64 only, where it is checked too)."""
    neuron, rec = _asrc(6, K, dtype, detach)
    cur = torch.randn(T, 3, 6, dtype=dtype) * 1.5  # K > T; chunks shorter than K; K = 1 (dense); T > K + 2·16
    alpha = rec.alpha().detach().requires_grad_()  # (the last: full-window blocks of the α-gradient)
    rec.alpha = lambda: alpha  # the reference's recurrent_input reads this leaf too
    kernels = {"mixed": scan_of("lif-soft", "mixed", asrc_impl)}
    ref = _run(lambda c: reference_scan(neuron, c, rec), cur, [rec.weight, alpha])
    fast = _run(lambda c: mixed_span_scan(neuron, c, rec.weight, alpha, chunk, kernels), cur, [rec.weight, alpha])
    assert fast[1].sum() > 0 and (fast[1] == 0).any()
    _assert_same(ref, fast, dtype)
    if K > 1:
        assert float(fast[2][2].abs().max()) > 1e-3  # the span-kernel gradient is exercised
    y, _ = mixed_span_scan(neuron, cur.detach().requires_grad_(), rec.weight, alpha, chunk, kernels)
    assert type(y.grad_fn).__name__ == "MixedScanBackward"
    if dtype == torch.float64:  # through α = softmax(p/τ) to the kernel parameter p
        del rec.alpha
        params = [rec.weight, rec.kernel]
        _assert_same(_run(lambda c: reference_scan(neuron, c, rec), cur, params),
                     _run(lambda c: mixed_span_scan(neuron, c, rec.weight, rec.alpha(), chunk, kernels), cur, params),
                     dtype)


@pytest.mark.parametrize("shape", [(1, 2, 5), (3, 2, 300)])  # T = 1; more elements than one C block
def test_asrc_mixed_scan_shapes(asrc_impl, shape):
    neuron, rec = _asrc(shape[2], 5, torch.float64)
    cur = torch.randn(*shape, dtype=torch.float64) * 1.5
    params = [rec.weight, rec.kernel]
    _assert_same(_run(lambda c: reference_scan(neuron, c, rec), cur, params),
                 _run(lambda c: scan_of("lif-soft", "mixed", asrc_impl)(neuron, c, rec.weight, rec.alpha(), 8), cur,
                      params), torch.float64)


@pytest.mark.parametrize("T", [1, 4])  # T <= k: no recurrent input at all
def test_src_skip_scan_short_sequences(impl, T):
    torch.manual_seed(0)
    neuron = LIFSoft(5)
    rec = SkipRecurrence(5, 4)
    cur = torch.randn(T, 2, 5) * 2
    ref = _run(lambda c: reference_scan(neuron, c, rec), cur, [rec.weight])
    fast = _run(lambda c: scan_of("lif-soft", "span", impl)(neuron, c, rec.weight, 4), cur, [rec.weight])
    _assert_same(ref, fast, torch.float32)
    assert torch.equal(fast[2][1], torch.zeros(5, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_chunk_carries_state_and_its_gradient(impl, dtype):
    """The chunk implementation and scan_chunk from a non-zero membrane, with a gradient arriving at the carried
    membrane too."""
    from snnkit_neurons.lif_soft import SoftState

    torch.manual_seed(0)
    neuron = LIFSoft(4).to(dtype)
    cur = (torch.randn(6, 2, 4, dtype=dtype) * 1.5).requires_grad_()
    u0 = (torch.randn(2, 4, dtype=dtype) * 0.5).requires_grad_()

    def loss(s, u):
        return (s * torch.arange(s.numel(), dtype=dtype).view(s.shape).sin()).sum() + (u * 0.3).sum()

    state = SoftState(u0)
    ss = []
    for i_t in cur.unbind(0):
        _, s, state = neuron.step(i_t, state)
        ss.append(s)
    s_ref, u_ref = torch.stack(ss), state.u
    g_ref = torch.autograd.grad(loss(s_ref, u_ref), [cur, u0])
    for chunk in (neuron.scan_chunk, lambda c, st: scan_of("lif-soft", "chunk", impl)(neuron, c, st)):
        _, s, st = chunk(cur, SoftState(u0))
        g = torch.autograd.grad(loss(s, st.u), [cur, u0])
        assert torch.equal(s, s_ref) and torch.equal(st.u, u_ref)
        for a, b in zip(g_ref, g):
            assert (a - b).abs().max().item() <= TOL[dtype] * max(1.0, a.abs().max().item())


def test_network_uses_the_fast_scan_under_torch_and_auto(monkeypatch):
    """The network runs lif's CPU implementation under --backend torch/auto (one node per layer), never under
    reference; and the result equals the reference backend's in every parameter gradient."""
    from snnkit_core.engine.network import Network
    from snnkit_neurons import scans

    reg = get_registry()
    conn = reg.get("connectivity", "srsc")()
    calls = []
    orig = scans.lif_scan_cpu

    def counting(current, leak, w, *args):
        calls.append(w is not None)
        return orig(current, leak, w, *args)

    monkeypatch.setattr(scans, "lif_scan_cpu", counting)
    x = torch.rand(12, 3, 5)
    grads = {}
    for backend in ("reference", "torch", "auto"):
        torch.manual_seed(0)
        net = Network(5, (6, 6, 6), 3, lambda n: LIF(n), conn)
        net.backend = backend
        out = net(x)
        out.logits.sum().backward()
        grads[backend] = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
        if backend == "reference":
            assert calls == []
        else:
            assert {r["implementation"] for r in net.plan_report()} <= {"c-kernel", "torch-loop"}
    assert calls.count(True) == 6 and calls.count(False) == 2  # 3 self-recurrent hidden + 1 output layer, twice
    for backend in ("torch", "auto"):
        for k, g in grads["reference"].items():
            assert (g - grads[backend][k]).abs().max().item() <= 1e-6 * max(1.0, g.abs().max().item()), (backend, k)


def test_a_library_from_other_sources_is_refused(monkeypatch, tmp_path):
    """An install-time build older than the sources (an editable install after a pull) is not used."""
    if cpu.lib() is None:
        pytest.skip("no C library here")
    monkeypatch.setattr(cpu, "source_hash", lambda: "0" * 16)
    with pytest.raises(RuntimeError, match="other sources"):
        cpu._load(cpu.path)


@pytest.mark.parametrize("tau_s", [8.0, 5.0, 3.3])
def test_psc_filter_in_place_equals_the_autograd_loop(tau_s):
    """The network input is filtered in place; the same loop with autograd (an input that requires grad)
    gives identical numbers."""
    from snnkit_neurons.lif import psc_filter

    x = torch.rand(40, 3, 5)
    fast = psc_filter(x, tau_s)
    slow = psc_filter(x.clone().requires_grad_(), tau_s)
    assert slow.requires_grad and not fast.requires_grad
    assert torch.equal(fast, slow.detach())
    assert torch.equal(fast[0], x[0] / tau_s) and torch.equal(fast[1], (1 - 1 / tau_s) * fast[0] + x[1] / tau_s)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_psc_filter_runs_in_c_and_equals_the_torch_loop(monkeypatch, dtype):
    """Without gradient the input filter is one C call (psc_fwd), bit for bit the torch loop it replaces (run
    with SNNKIT_CPU_KERNELS=0), for an odd element count over more than one C block and a strided input."""
    from snnkit_neurons.lif import psc_filter

    _need_c()
    x = torch.rand(3, 37, 31, dtype=dtype).permute(1, 0, 2)  # (T=37, B=3, C=31): not contiguous, B·C = 93
    called = []
    real_fn = cpu.fn
    monkeypatch.setattr(cpu, "fn", lambda name, dt: called.append(name) or real_fn(name, dt))
    fast = psc_filter(x, 3.3)
    assert called == ["psc_fwd"]
    big = torch.rand(4, 2, 700, dtype=dtype)  # 1,400 elements per step: three C blocks
    fast_big = psc_filter(big, 5.0)
    monkeypatch.setenv("SNNKIT_CPU_KERNELS", "0")
    cpu.forget()
    try:
        assert not cpu.usable(x)
        assert torch.equal(fast, psc_filter(x, 3.3)) and torch.equal(fast_big, psc_filter(big, 5.0))
    finally:
        monkeypatch.delenv("SNNKIT_CPU_KERNELS")
        cpu.forget()
    assert cpu.lib() is not None


def test_threads_do_not_change_the_numbers():
    """With OpenMP the C scans split the elements over torch's thread count; every element's recurrence is
    independent and the batch sums run in a fixed order, so 1 and 3 threads give the same bits (blocks of 512
    elements: N*B = 1800 spans 4)."""
    if cpu.lib() is None:
        pytest.skip("no C library here")
    get_registry()
    neuron, rec, params = _lif(600, "sigmoid", False, torch.float32, True)
    cur = torch.randn(9, 3, 600) * 1.5
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(lambda c: scan_of("lif", "diagonal", "c-kernel")(neuron, c, rec), cur, params)
        torch.set_num_threads(3)
        three = _run(lambda c: scan_of("lif", "diagonal", "c-kernel")(neuron, c, rec), cur, params)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], three[0]) and torch.equal(one[1], three[1])
    assert all(torch.equal(a, b) for a, b in zip(one[2], three[2]))  # leak and self weights: summed in C, in order


def test_small_calls_run_on_one_thread(monkeypatch):
    """A per-step C call over one (B, N) step runs on one thread; whole-sequence calls use torch's count."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert cpu.threads(32 * 128) == 1
    assert cpu.threads(cpu.MIN_PARALLEL) == 4 and cpu.threads() == 4


def test_asrc_fused_scan_is_the_same_on_1_and_2_threads_and_restores_blas_threads():
    """The fused ASRC node runs its per-step products on one BLAS thread (cpu.one_blas_thread): the numbers do
    not depend on --threads, and MKL's thread-local setting is back to 'none' (0) afterwards."""
    if cpu.lib() is None or cpu.gemm(torch.float32) is None:
        pytest.skip("no C library or no BLAS gemm from torch here")
    get_registry()
    mixed = scan_of("lif-soft", "mixed", "c-kernel")
    neuron, rec = _asrc(40, 9, torch.float32)
    cur = torch.randn(30, 4, 40) * 1.5
    before = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(_run(lambda c: mixed(neuron, c, rec.weight, rec.alpha(), 8), cur, [rec.weight, rec.kernel]))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0][1], outs[1][1])
    for a, b in zip(outs[0][2], outs[1][2]):
        assert torch.equal(a, b)
    # MKL's thread-local count (which torch.set_num_threads sets) is what it was: after a scan under 2 torch
    # threads it is 2 again, not the 1 the scan used
    setter = cpu._blas_threads_local[0]
    if setter is not None:
        torch.set_num_threads(2)
        try:
            mixed(neuron, cur, rec.weight, rec.alpha(), 8)[0].sum().backward()
            assert setter(2) == 2
        finally:
            torch.set_num_threads(before)


def test_a_missing_c_compiler_is_reported_in_the_plan(monkeypatch, tmp_path):
    """No C compiler (and no library built on install or cached): every lif layer runs the torch loop, the plan
    says why in plain words, and the notes a command prints at start say so once."""
    from snnkit_core.contract import implementations
    from snnkit_core.engine.network import Network

    reg = get_registry()
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(cpu.shutil, "which", lambda name: None)
    monkeypatch.setattr(cpu, "_installed", lambda: None)
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path))
    cpu.forget()
    implementations.forget_availability()
    try:
        net = Network(5, (6, 6), 3, lambda n: LIF(n), reg.get("connectivity", "self")())
        report = net.plan_report()
        assert [r["layer"] for r in report] == ["layer0", "layer1", "output"]
        assert [r["implementation"] for r in report] == ["torch-loop"] * 3 and net.paths() == ["fast"] * 3
        why = [s["reason"] for s in report[0]["skipped"] if s["implementation"] == "c-kernel"]
        assert len(why) == 1 and "no C compiler was found" in why[0]
        notes = plan_notes(report)
        assert len(notes) == 1 and notes[0].startswith("c-kernel cannot run here, so layer0, layer1, output use")
        assert "no C compiler was found" in notes[0]
        net(torch.rand(8, 2, 5)).logits.sum().backward()  # and it trains
    finally:
        monkeypatch.undo()
        cpu.forget()
        implementations.forget_availability()


def test_the_c_switch_is_read_once_per_process(monkeypatch):
    """SNNKIT_CPU_KERNELS is read when the library is first wanted, not on every call."""
    _need_c()
    monkeypatch.setenv("SNNKIT_CPU_KERNELS", "0")
    assert cpu.lib() is not None  # already decided in this process
    cpu.forget()
    try:
        assert cpu.lib() is None and "SNNKIT_CPU_KERNELS=0" in cpu.failure
    finally:
        monkeypatch.undo()
        cpu.forget()
    assert cpu.lib() is not None
