"""``lif-rsbp``: the ST-RSBP neuron (Zhang & Li, NeurIPS 2019; docs/neurons/lif-rsbp.md).

LIF with a first-order synaptic response, a refractory period, a one-step synaptic delay on the feedforward
input and a hard reset to 0. Per neuron, per step t (1 step = dt), starting from v = ep = 0, no counter:

    v   ← v·(1 - 1/τm);   ep ← ep·(1 - 1/τs)
    ep  ← ep + I[t-1] + R[t]          I: feedforward current W s_pre (arrives one step late, ``delay``);
                                      R: recurrent input, already from s[t-1] (the recurrence's own delay)
    v   ← v + ep/τs
    if the refractory counter c > 0:  v ← 0,  c ← c - 1
    s[t] = H(v - (V_th - 1e-6))       (the reference's tolerance)
    if s[t] = 1:  c ← T_ref,  v ← 0   (hard reset)

So after a spike at t the membrane is held at 0 on steps t+1 … t+T_ref (T_ref = 2: two steps), while the
synaptic current ep keeps integrating. The output y is the spike train itself (no PSC filter); its count
o = Σ_t s[t] is what ST-RSBP works with. At t = 0 nothing has arrived yet (I[-1] = 0), so the neuron cannot
fire. The reference's biases are off, so there are none.

Units: τm, τs, T_ref in steps; v, ep, V_th dimensionless (the same units as the weights). With the code's
defaults τm = 64, τs = 8, V_th = 10 (the paper's Table 1); the speech runs of the reference used τm = 128.

``step`` is differentiable through a surrogate of H (sigmoid by default), so ``bptt`` can train this neuron
too; ``st-rsbp`` never uses autograd.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from snnkit_core import Neuron, Param
from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.surrogate import spike

#: the reference's firing tolerance: s = [v > V_th - 1e-6]
FIRE_TOL = 1e-6


class RSBPState(NamedTuple):
    v: torch.Tensor  # membrane after reset / refractory clamp, (B, N)
    ep: torch.Tensor  # synaptic current, (B, N)
    counter: torch.Tensor  # refractory steps left, (B, N) (float, integral values)
    pending: torch.Tensor  # the feedforward current of the previous step (the one-step delay), (B, N)


def rsbp_step(current, state: RSBPState, recurrent, tau_m: float, tau_s: float, v_th: float, t_ref: int, delay: bool,
              surrogate=("sigmoid", 1.0)):
    """One step of the neuron: ``(I[t], state, R[t] or None) -> (s[t], v_pre[t], new_state)``.

    ``v_pre`` is the membrane before the reset at this step (after the refractory clamp): at a spike it is the
    potential the neuron fired with, the quantity of ST-RSBP's identity Σ_j w_ij e_ij = Σ_f v_i(t_f).
    """
    arriving = state.pending if delay else current
    ep = state.ep * (1 - 1 / tau_s) + arriving
    if recurrent is not None:
        ep = ep + recurrent
    v = state.v * (1 - 1 / tau_m) + ep / tau_s
    refractory = state.counter > 0
    v = torch.where(refractory, torch.zeros_like(v), v)
    counter = state.counter - refractory.to(v.dtype)
    s = spike(v - (v_th - FIRE_TOL), *surrogate)
    fired = s.detach() > 0
    counter = torch.where(fired, torch.full_like(counter, float(t_ref)), counter)
    v_after = v * (1 - s)
    return s, v, RSBPState(v_after, ep, counter, current if delay else state.pending)


class LIFRSBP(Neuron):
    """LIF of ST-RSBP: first-order synaptic current, refractory period, 1-step input delay, hard reset."""

    name = "lif-rsbp"
    description = "LIF of ST-RSBP: first-order synaptic current, refractory T_ref, 1-step input delay, hard reset"
    params = (
        Param("tau_m", 64.0, "membrane time constant (reference: 64 images, 128 speech)", unit="steps"),
        Param("tau_s", 8.0, "synaptic time constant", unit="steps"),
        Param("v_th", 10.0, "firing threshold (fires when v > V_th - 1e-6)"),
        Param("t_ref", 2, "refractory period: the membrane is held at 0 for this many steps after a "
                          "spike", unit="steps"),
        Param("delay", True, "feedforward input arrives one step late, I(t-1) (the reference's synaptic delay)"),
        Param("surrogate_width", 1.0, "width of the sigmoid surrogate used only when a gradient rule (bptt) "
              "differentiates step; ST-RSBP does not"),
    )
    has_psc = False
    has_surrogate = True
    has_leak = False
    has_rsbp_dynamics = True  # st-rsbp computes its S-PSPs from tau_m, syn_tau, t_ref and delay
    sums_inputs = False  # the feedforward current is delayed one step, the recurrent input is not
    default_surrogate = ("sigmoid", 1.0)

    def __init__(self, size: int, **params):
        super().__init__(size, **params)
        hp = self.hparams
        if hp["tau_m"] <= 1 or hp["tau_s"] <= 1:
            raise ConfigError(f"lif-rsbp needs tau_m > 1 and tau_s > 1 steps; got tau_m={hp['tau_m']}, "
                              f"tau_s={hp['tau_s']}")
        if not hp["v_th"] > 0:
            raise ConfigError(f"lif-rsbp needs v_th > 0; got {hp['v_th']}")
        if hp["t_ref"] < 0:
            raise ConfigError(f"lif-rsbp needs t_ref >= 0 steps; got {hp['t_ref']}")
        self.v_th = float(hp["v_th"])
        self.tau_m = float(hp["tau_m"])
        self.syn_tau = float(hp["tau_s"])  # not ``tau_s``: that attribute means "has a PSC output" (None here)
        self.t_ref = int(hp["t_ref"])
        self.delay = bool(hp["delay"])
        self.set_surrogate(self.default_surrogate[0], hp["surrogate_width"])

    def initial_state(self, batch, device, dtype):
        z = torch.zeros(batch, self.size, device=device, dtype=dtype)
        return RSBPState(z, z, z, z)

    def step(self, current, state, recurrent=None):
        s, _, state = rsbp_step(current, state, recurrent, self.tau_m, self.syn_tau, self.v_th, self.t_ref, self.delay,
                                self.surrogate)
        return s, s, state


def register(register):
    register(LIFRSBP)
