"""``nrr`` and ``alif`` against independent step-by-step float64 implementations of their equations, plus the
neuron contract tests (snnkit.testing)."""

import math

import numpy as np
import pytest
import torch

from snnkit.testing import NeuronContract
from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.scan import reference_scan
from snnkit_neurons.alif import ALIF
from snnkit_neurons.nrr import NRR


class TestNRRContract(NeuronContract):
    neuron_cls = NRR


class TestNRRQuirkContract(NeuronContract):
    neuron_cls = NRR
    params = {"reset": "quirk", "gamma": 0.0}


class TestALIFContract(NeuronContract):
    neuron_cls = ALIF


def nrr_numpy(I_f, W_r, *, decay=0.2, v_th=0.5, alpha=0.9, beta=0.1, gamma=1.0, reset="fix"):
    """Spec §6.2 written out per step in float64 numpy: returns S (T, B, N) and V_f (T, B, N)."""
    T, B, N = I_f.shape
    V = np.zeros((B, N))
    S = np.zeros((B, N))
    a = np.zeros((B, N))
    out_s, out_vf = [], []
    for t in range(T):
        a = alpha * a + beta * S
        r = (1 - S) if reset == "quirk" else (1 - np.minimum(S, 1))
        V_f = decay * V * r + I_f[t] - gamma * a
        s_f = (V_f > v_th).astype(float)
        V_r = S @ W_r.T
        s_r = (V_r > v_th).astype(float)
        V = V_f + V_r
        S = s_f + s_r
        out_s.append(S)
        out_vf.append(V_f)
    return np.stack(out_s), np.stack(out_vf)


class _FixedRec(torch.nn.Module):
    """A recurrence with a given matrix: R[t] = W y[t-1] (what `sparse` gives the neuron)."""

    span = 1

    def __init__(self, w):
        super().__init__()
        self.w = w

    def recurrent_input(self, past):
        return past[0] @ self.w.t()


@pytest.mark.parametrize("reset", ["fix", "quirk"])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_nrr_matches_the_spec_step_by_step(reset, gamma):
    rng = np.random.default_rng(0)
    T, B, N = 30, 3, 6
    I_f = rng.uniform(-0.5, 1.6, (T, B, N))
    W_r = rng.uniform(-0.2, 0.8, (N, N))
    np.fill_diagonal(W_r, 0)
    S_ref, Vf_ref = nrr_numpy(I_f, W_r, gamma=gamma, reset=reset)
    n = NRR(N, gamma=gamma, reset=reset).double()
    y, s = reference_scan(n, torch.from_numpy(I_f), _FixedRec(torch.from_numpy(W_r)))
    np.testing.assert_array_equal(s.numpy(), S_ref)
    np.testing.assert_array_equal(y.numpy(), S_ref)
    assert (S_ref == 2).any() and (S_ref == 1).any(), "both channels must fire together somewhere (S = 2)"


def test_the_quirk_flips_the_membrane_sign_and_the_fix_resets_it():
    """After S = 2 the quirk carries -κ·V into the next step; the fix carries 0."""
    n_q, n_f = NRR(1, reset="quirk", gamma=0.0).double(), NRR(1, reset="fix", gamma=0.0).double()
    state = n_q.initial_state(1, torch.device("cpu"), torch.float64)
    state = state._replace(v=torch.tensor([[2.0]]), s=torch.tensor([[2.0]]))
    zero = torch.zeros(1, 1, dtype=torch.float64)
    *_, q = n_q.step(zero, state)
    *_, f = n_f.step(zero, state)
    assert float(q.v) == pytest.approx(-0.2 * 2.0) and float(f.v) == 0.0


def test_gamma_raises_the_effective_threshold():
    """With γ = 1 a constant input fires less often (adaptive threshold) than with γ = 0."""
    cur = torch.full((50, 1, 4), 0.6, dtype=torch.float64)
    s0 = reference_scan(NRR(4, gamma=0.0).double(), cur)[1].sum()
    s1 = reference_scan(NRR(4, gamma=1.0).double(), cur)[1].sum()
    assert float(s1) < float(s0)


def test_nrr_surrogate_is_the_rectangular_window():
    n = NRR(1).double()
    st = n.initial_state(1, torch.device("cpu"), torch.float64)
    for v, want in [(0.2, 1.0), (0.95, 1.0), (1.05, 0.0), (-0.1, 0.0)]:
        cur = torch.tensor([[v]], dtype=torch.float64, requires_grad=True)
        y, _, _ = n.step(cur, st)
        y.sum().backward()
        assert float(cur.grad) == want, v


def test_nrr_rejects_bad_parameters():
    with pytest.raises(ConfigError, match="decay"):
        NRR(3, decay=1.5)
    with pytest.raises(ConfigError):
        NRR(3, reset="sometimes")


def alif_numpy(I, *, decay=0.9, v_th=1.0, beta=1.8, tau_a=20.0):
    rho = math.exp(-1 / tau_a)
    T, B, N = I.shape
    u, a, s = np.zeros((B, N)), np.zeros((B, N)), np.zeros((B, N))
    out, thr_out = [], []
    for t in range(T):
        a = rho * a + (1 - rho) * s
        A = v_th + beta * a
        h = decay * u + I[t]
        s = (h >= A).astype(float)
        u = h - A * s
        out.append(s)
        thr_out.append(A)
    return np.stack(out), np.stack(thr_out)


@pytest.mark.parametrize("beta", [0.0, 1.8])
def test_alif_matches_its_equations(beta):
    rng = np.random.default_rng(1)
    I = rng.uniform(0, 1.2, (60, 2, 5))
    ref, thr = alif_numpy(I, beta=beta, tau_a=10.0)
    s = reference_scan(ALIF(5, beta=beta, tau_a=10.0).double(), torch.from_numpy(I))[1]
    np.testing.assert_array_equal(s.numpy(), ref)
    assert ref.sum() > 0
    if beta > 0:
        assert thr.max() > 1.0  # the threshold did adapt
        assert ref.sum() < alif_numpy(I, beta=0.0, tau_a=10.0)[0].sum()
