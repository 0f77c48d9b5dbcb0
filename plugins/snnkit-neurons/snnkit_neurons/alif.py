"""``alif``: the standard adaptive-threshold LIF (ALIF, as in LSNN, Bellec et al. 2018), trained by surrogate BPTT.

Per neuron, per step t (dimensionless membrane units, one step = dt), with U = a = S = 0 at the start of
every sequence:

    a[t] = ρ·a[t-1] + (1 - ρ)·S[t-1]        ρ = exp(-1/τ_a), τ_a = ``tau_a`` (steps)
    A[t] = V_th + β·a[t]                     the adaptive threshold; β = ``beta`` (1.8, LSNN's)
    H[t] = λ·U[t-1] + I[t]                   λ = ``decay``; I = feedforward + recurrent input
    S[t] = H(H[t] - A[t])                    inclusive (fires on H >= A)
    U[t] = H[t] - A[t]·S[t]                  soft reset by the current threshold

The output y is S. The surrogate derivative of H is the triangle max(0, w - |x|)/w² with w = 1 unless the
rule picks another. β = 0 gives ``lif-soft``'s dynamics with threshold V_th.

``step`` takes an optional ``hook`` applied to S before S is used (reward-prop's gradient replacement).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from snnkit_core import Neuron, Param
from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.surrogate import spike


class ALIFState(NamedTuple):
    u: torch.Tensor  # membrane after reset, (B, N)
    a: torch.Tensor  # threshold adaptation trace, (B, N)
    s: torch.Tensor  # last spikes, (B, N)


def alif_step(current, state: ALIFState, *, decay: float, v_th: float, beta: float, rho: float,
              surrogate=("triangle", 1.0), hook=None):
    """Pure step ``(I[t], state) -> (S[t], ALIFState)`` of the module docstring's equations."""
    a = rho * state.a + (1 - rho) * state.s
    thr = v_th + beta * a
    h = decay * state.u + current
    s = spike(h - thr, surrogate[0], surrogate[1], inclusive=True)
    if hook is not None:
        s = hook(s)
    return s, ALIFState(h - thr * s, a, s)


class ALIF(Neuron):
    """Adaptive-threshold LIF: threshold V_th + β·a with a trace a decaying with τ_a (LSNN's ALIF)."""

    name = "alif"
    description = (
        "adaptive LIF (LSNN): threshold V_th + β·a, a[t] = ρ a[t-1] + (1-ρ) S[t-1], soft reset, triangle surrogate"
    )
    params = (Param("decay", 0.9, "λ: membrane decay per step in H[t] = λ·U[t-1] + I[t]"),
              Param("v_th", 1.0, "V_th: the threshold without adaptation"),
              Param("beta", 1.8, "β: threshold increase per unit of the trace a (0: no adaptation)"),
              Param("tau_a", 20.0, "τ_a: time constant of the adaptation trace, ρ = exp(-1/τ_a)", unit="steps"))
    has_surrogate = True
    sums_inputs = True
    has_spike_hook = True
    default_surrogate = ("triangle", 1.0)

    def __init__(self, size: int, **params):
        super().__init__(size, **params)
        hp = self.hparams
        if not 0.0 <= hp["decay"] <= 1.0:
            raise ConfigError(f"alif needs 0 <= decay <= 1; got {hp['decay']}")
        if hp["v_th"] <= 0 or hp["tau_a"] <= 0 or hp["beta"] < 0:
            raise ConfigError(f"alif needs v_th > 0, tau_a > 0 and beta >= 0; got {hp['v_th']}, {hp['tau_a']}, "
                              f"{hp['beta']}")
        self.v_th = float(hp["v_th"])
        self._consts = {"decay": float(hp["decay"]), "v_th": self.v_th, "beta": float(hp["beta"]),
                        "rho": math.exp(-1.0 / float(hp["tau_a"]))}

    def initial_state(self, batch, device, dtype):
        z = torch.zeros(batch, self.size, device=device, dtype=dtype)
        return ALIFState(z, z, z)

    def step(self, current, state, recurrent=None, hook=None):
        s, state = alif_step(
            self.total_input(current, recurrent), state, surrogate=self.surrogate, hook=hook, **self._consts
        )
        return s, s, state


def register(register):
    register(ALIF)
