"""lif-soft (spec §5.1): hand-computed trajectory, inclusive threshold, soft reset on the gradient path, surrogate."""

from __future__ import annotations

import pytest
import torch

from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.scan import reference_scan
from snnkit_neurons.lif_soft import LIFSoft


def test_capabilities_and_defaults():
    n = LIFSoft(3)
    assert n.name == "lif-soft"
    assert (n.has_psc, n.has_surrogate) == (False, True)
    assert n.default_surrogate == ("triangle", 1.0) and n.surrogate == ("triangle", 1.0)
    assert (n.decay, n.v_th, n.detach_reset) == (0.5, 1.0, False)
    with pytest.raises(ConfigError):
        LIFSoft(3, decy=0.3)


def test_hand_computed_four_steps():
    # λ = 0.5, V_th = 1.  Neuron 0: I = .6 .8 1.5 0;  neuron 1 hits the threshold exactly (fires: H - V_th >= 0)
    #  n0: H = .6 -> U .6 | H = .3+.8 = 1.1 -> S 1, U .1 | H = .05+1.5 = 1.55 -> S 1, U .55 | H = .275 -> U .275
    #  n1: H = 1 -> S 1, U 0 | H = 0 | H = 0 | H = .5 -> U .5
    I = torch.tensor([[0.6, 1.0], [0.8, 0.0], [1.5, 0.0], [0.0, 0.5]], dtype=torch.float64).unsqueeze(
        1
    )  # (T, B=1, N=2)
    n = LIFSoft(2)
    state = n.initial_state(1, I.device, I.dtype)
    spikes, us = [], []
    for t in range(4):
        y, s, state = n.step(I[t], state)
        assert torch.equal(y, s)  # output = spikes
        spikes.append(s[0].tolist())
        us.append(state.u[0].tolist())
    assert spikes == [[0, 1], [1, 0], [1, 0], [0, 0]]
    torch.testing.assert_close(torch.tensor(us, dtype=torch.float64),
                               torch.tensor([[0.6, 0.0], [0.1, 0.0], [0.55, 0.0], [0.275, 0.5]], dtype=torch.float64))
    y, s = reference_scan(n, I)
    assert s[:, 0].tolist() == spikes


def test_custom_decay_and_threshold():
    n = LIFSoft(1, decay=0.8, v_th=2.0)
    I = torch.tensor([[[2.5]], [[0.0]]], dtype=torch.float64)
    state = n.initial_state(1, I.device, I.dtype)
    _, s0, state = n.step(I[0], state)
    assert float(s0) == 1.0 and float(state.u) == pytest.approx(0.5)
    _, s1, state = n.step(I[1], state)
    assert float(s1) == 0.0 and float(state.u) == pytest.approx(0.4)


def _grad_through_reset(detach_reset: bool) -> tuple[float, float]:
    n = LIFSoft(1, detach_reset=detach_reset)
    i0 = torch.tensor([[1.2]], dtype=torch.float64, requires_grad=True)
    state = n.initial_state(1, i0.device, i0.dtype)
    _, s0, state = n.step(i0, state)
    _, _, state = n.step(torch.zeros_like(i0), state)
    (g_u,) = torch.autograd.grad(state.u.sum(), i0, retain_graph=True)
    (g_s,) = torch.autograd.grad(s0.sum(), i0)
    return float(g_u), float(g_s)


def test_soft_reset_is_on_the_gradient_path():
    # U[1] = H[1] - V_th S[1],  H[1] = λ(H[0] - V_th S[0]) + I[1]:
    # dU[1]/dI[0] = (1 - V_th σ'(H[1] - V_th)) · λ · (1 - V_th σ'(H[0] - V_th)),  H[0] = 1.2, H[1] = 0.1;
    # triangle γ = 1: σ'(0.2) = 0.8, σ'(-0.9) = 0.1
    g_u, g_s = _grad_through_reset(False)
    assert g_s == pytest.approx(0.8)
    assert g_u == pytest.approx((1 - 0.1) * 0.5 * (1 - 0.8))
    # with the reset detached only λ remains: this is what the default must NOT do
    g_u_detached, _ = _grad_through_reset(True)
    assert g_u_detached == pytest.approx(0.5)


def test_surrogate_can_be_changed():
    n = LIFSoft(1)
    n.set_surrogate("rectangle", 1.0)
    x = torch.tensor([[1.3]], dtype=torch.float64, requires_grad=True)
    _, s, _ = n.step(x, n.initial_state(1, x.device, x.dtype))
    s.sum().backward()
    assert float(x.grad) == pytest.approx(1.0)  # |0.3| < 1/2 -> 1/w


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("kind,width", [("triangle", 1.0), ("sigmoid", 0.3)])
def test_scan_chunk_equals_step_loop_with_gradients(detach_reset, kind, width):
    """The one-node chunk scan (hand-written backward) against autograd through ``step``: S, U and the
    gradients to the currents and to the initial membrane."""
    g = torch.Generator().manual_seed(0)
    n = LIFSoft(4, detach_reset=detach_reset, decay=0.7)
    n.set_surrogate(kind, width)
    I = (torch.randn(9, 3, 4, generator=g, dtype=torch.float64) + 0.6).requires_grad_()
    u0 = (torch.rand(3, 4, generator=g, dtype=torch.float64)).requires_grad_()
    w_s = torch.randn(9, 3, 4, generator=g, dtype=torch.float64)
    w_u = torch.randn(3, 4, generator=g, dtype=torch.float64)

    def loss_of(run):
        s, u = run()
        return (s * w_s).sum() + (u * w_u).sum(), s, u

    def by_step():
        state, ss = type(n.initial_state(3, I.device, I.dtype))(u0), []
        for t in range(9):
            _, s, state = n.step(I[t], state)
            ss.append(s)
        return torch.stack(ss), state.u

    def by_chunk():
        _, s, state = n.scan_chunk(I, type(n.initial_state(3, I.device, I.dtype))(u0))
        return s, state.u

    la, sa, ua = loss_of(by_step)
    ga = torch.autograd.grad(la, (I, u0))
    lb, sb, ub = loss_of(by_chunk)
    gb = torch.autograd.grad(lb, (I, u0))
    assert torch.equal(sa, sb) and 0 < float(sa.detach().mean()) < 1
    torch.testing.assert_close(ua, ub, rtol=1e-12, atol=1e-12)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
