"""``if``: non-leaky integrate-and-fire with soft reset (reset by subtraction).

Per neuron, per step t (1 step = dt), with v̂[-1] = 0:

    v[t] = v̂[t-1] + I[t]              no leak: the membrane integrates its input exactly
    s[t] = H(v[t] - V_th)             strict '>'; surrogate derivative in the backward pass
    v̂[t] = v[t] - V_th·s[t]           soft reset: subtract the threshold, keep the excess

The output y is the spike train s (no synaptic trace), so the next layer's weights multiply spikes.
Units: v and V_th dimensionless (in units of the input current per step).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from snnkit_core import Neuron, Param
from snnkit_core.contract.surrogate import KINDS, spike


class IFState(NamedTuple):
    v: torch.Tensor  # v̂: membrane after reset, (B, N)


def if_step(current: torch.Tensor, state: IFState, v_th: float, surrogate=("fast-sigmoid", 0.5), hook=None):
    """Pure step: ``(I[t] (B, N), state) -> (s[t], new_state)``; ``hook`` (if given) maps the spikes before the
    reset uses them (``Neuron.has_spike_hook``)."""
    v = state.v + current
    s = spike(v - v_th, *surrogate)
    if hook is not None:
        s = hook(s)
    return s, IFState(v - v_th * s)


class IF(Neuron):
    """Integrate-and-fire without leak, soft reset, spikes as output (example plugin)."""

    name = "if"
    description = "integrate-and-fire, no leak, soft reset (subtract V_th); output = spikes (example plugin)"
    params = (
        Param("v_th", 1.0, "firing threshold (fires when v > V_th)"),
        Param("surrogate", "fast-sigmoid", "surrogate derivative used when the rule does not choose one",
              choices=KINDS),
        Param("surrogate_width", 0.5, "surrogate width, in units of membrane potential"),
    )
    has_psc = False  # y is the spike train
    has_surrogate = True  # step is differentiable through spike()'s surrogate: bptt accepts it
    has_leak = False  # no per-neuron leak: bip refuses it
    has_spike_hook = True  # step takes hook= (rate-reg and reward-prop see or replace the spikes)

    def __init__(self, size: int, **params):
        super().__init__(size, **params)
        if self.hparams["v_th"] <= 0:
            raise ValueError(f"if needs v_th > 0; got {self.hparams['v_th']}")
        self.default_surrogate = (self.hparams["surrogate"], self.hparams["surrogate_width"])
        self.set_surrogate(*self.default_surrogate)

    def initial_state(self, batch, device, dtype):
        return IFState(torch.zeros(batch, self.size, device=device, dtype=dtype))

    def step(self, current, state, recurrent=None, hook=None):
        # one membrane: the recurrent input is simply added to the feedforward current (Neuron.total_input)
        s, state = if_step(self.total_input(current, recurrent), state, self.hparams["v_th"], self.surrogate, hook)
        return s, s, state
