"""``nrr``: the two-channel adaptive-threshold neuron of NRR-SNN (Jia et al. 2021; docs/neurons/nrr.md, 'Equations').

Per neuron, per step t (dimensionless membrane units, one step = dt = 1 ms), with V = S = a = 0 at the start
of every sequence:

    a[t]   = α·a[t-1] + β·S[t-1]                          α = ``alpha`` (0.9), β = ``beta`` (0.1)   (eq. 3)
    V_f[t] = κ·V[t-1]·r(S[t-1]) + I_f[t] - γ·a[t]           κ = ``decay`` (0.2), γ = ``gamma`` (1)    (eq. 4, 6)
    s_f[t] = H(V_f[t] - θ)                                  θ = ``v_th`` (0.5), strict '>'
    V_r[t] = I_r[t]                                         the recurrent input (W_r ⊙ M) S[t-1]; no memory
    s_r[t] = H(V_r[t] - θ)
    V[t]   = V_f[t] + V_r[t],   S[t] = s_f[t] + s_r[t] ∈ {0, 1, 2}

The output y (what the next layer and the recurrent matrix multiply) is S. The pseudo-derivative of H is the
rectangle ∂s/∂V = 1[|V - θ| < 0.5] (eq. 8: ``rectangle`` with width 1; the BPTT rule may choose another).

Reset ``r(S)``:

* ``fix`` (default): r(S) = 1 - min(S, 1): any spike (S = 1 or 2) resets the carried membrane to 0;
* ``quirk``: r(S) = 1 - S, as in paper eq. 6 and the authors' code: with S = 2 it is -1, so the membrane
  carried into the next step flips its sign (a neuron that fired on both channels starts the next step with
  -κ·V instead of 0). Kept for parity with the code, not because it is meant.

γ = 1 is the paper's adaptive threshold (effectively θ + γ·a); γ = 0 is the authors' code default
(``--xishuada 0``), where adaptation is off.

``step`` takes an optional ``hook`` (used by ``reward-prop``): a function applied to s_f and s_r right after
they are computed, before S feeds anything (reset, trace, output), so a hook that replaces the gradient of a
spike replaces every path back into it, as the authors' ``HookFunction`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from snnkit_core import Neuron, Param
from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.surrogate import spike


class NRRState(NamedTuple):
    v: torch.Tensor  # V = V_f + V_r, the membrane carried to the next step, (B, N)
    s: torch.Tensor  # S = s_f + s_r ∈ {0, 1, 2}, (B, N)
    a: torch.Tensor  # adaptive threshold trace a, (B, N)


def nrr_step(current: torch.Tensor, state: NRRState, recurrent: torch.Tensor | None, *, decay: float, v_th: float,
             alpha: float, beta: float, gamma: float, reset: str, surrogate=("rectangle", 1.0),
             hook: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """Pure step ``(I_f[t], state, I_r[t] or None) -> (S[t], NRRState)`` of the module docstring's equations."""
    kind, width = surrogate
    a = alpha * state.a + beta * state.s
    keep = 1 - state.s if reset == "quirk" else 1 - state.s.clamp(max=1)
    v_f = decay * state.v * keep + current - gamma * a
    s_f = spike(v_f - v_th, kind, width)
    if hook is not None:
        s_f = hook(s_f)
    if recurrent is None:  # no recurrent channel: V_r = 0 < θ never fires
        return s_f, NRRState(v_f, s_f, a)
    s_r = spike(recurrent - v_th, kind, width)
    if hook is not None:
        s_r = hook(s_r)
    s = s_f + s_r
    return s, NRRState(v_f + recurrent, s, a)


class NRR(Neuron):
    """Two-channel (feedforward + recurrent) adaptive-threshold neuron, S ∈ {0,1,2} (NRR-SNN)."""

    name = "nrr"
    description = "NRR-SNN neuron: feedforward + recurrent channel, S in {0,1,2}, adaptive threshold, rect window"
    params = (
        Param("decay", 0.2, "κ: the carried membrane's factor per step (↔ leak g of eq. 4)"),
        Param("v_th", 0.5, "θ: firing threshold of both channels (strict '>')"),
        Param("alpha", 0.9, "α: decay of the adaptive threshold trace a per step"),
        Param("beta", 0.1, "β: increment of a per spike (a* = β/(1-α)·S)"),
        Param("gamma", 1.0, "γ: weight of a in the feedforward membrane (1: paper; 0: authors' code default, "
                            "adaptation off)"),
        Param("reset", "fix", "fix: r(S) = 1 - min(S,1); quirk: r(S) = 1 - S (S = 2 flips the membrane's sign, as the "
                              "code)",
              choices=("fix", "quirk")),
    )
    has_psc = False
    has_surrogate = True
    has_leak = False
    sums_inputs = False  # the two channels spike separately
    #: ``step`` takes ``hook`` (applied to every spike tensor before use): reward-prop needs it
    has_spike_hook = True
    default_surrogate = ("rectangle", 1.0)  # 1[|V - θ| < 0.5], eq. 8

    def __init__(self, size: int, **params):
        super().__init__(size, **params)
        hp = self.hparams
        if not 0.0 <= hp["decay"] <= 1.0:
            raise ConfigError(f"nrr needs 0 <= decay <= 1; got {hp['decay']}")
        if not 0.0 <= hp["alpha"] < 1.0:
            raise ConfigError(f"nrr needs 0 <= alpha < 1 (a decaying trace); got {hp['alpha']}")
        if hp["v_th"] <= 0:
            raise ConfigError(f"nrr needs v_th > 0; got {hp['v_th']}")
        self.v_th = float(hp["v_th"])
        self._consts = {k: float(hp[k]) for k in ("decay", "v_th", "alpha", "beta", "gamma")}
        self._consts["reset"] = hp["reset"]

    def initial_state(self, batch, device, dtype):
        z = torch.zeros(batch, self.size, device=device, dtype=dtype)
        return NRRState(z, z, z)

    def step(self, current, state, recurrent=None, hook=None):
        s, state = nrr_step(current, state, recurrent, surrogate=self.surrogate, hook=hook, **self._consts)
        return s, s, state


def register(register):
    register(NRR)
