"""``lif``: leaky integrate-and-fire with a normalised first-order synaptic PSC and hard reset.

Exactly the discrete update of TSSL-BP's public code (docs/neurons/lif.md, 'Equations'), which ScSr-SNN builds on.
Per neuron, per step t (1 step = dt), with ũ[-1] = 0 and a[-1] = 0:

    Δu[t] = -(1 - λ)·ũ[t-1] + I[t]         λ = 1 - 1/τm (the leak; per neuron, BIP may train it)
    u[t]  = ũ[t-1] + Δu[t] = λ·ũ[t-1] + I[t]
    s[t]  = H(u[t] - V_th)                  strict '>'
    ũ[t]  = u[t]·(1 - s[t])                 hard reset to 0, no refractory period
    a[t]  = (1 - 1/τs)·a[t-1] + s[t]/τs     normalised PSC: the kernel sums to ~1

The output y = a (the PSC) is what the next layer's weights multiply. The network input x passes through
the same synaptic filter first (``encode_input``). Units: τm, τs in steps; u, V_th dimensionless.
Its faster scans (Triton, the CPU's C kernel and torch loop) are registered in :mod:`snnkit_neurons.scans`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from snnkit_core import Neuron, Param
from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.surrogate import spike

from .kernels import cpu


class LIFState(NamedTuple):
    u_reset: torch.Tensor  # ũ: membrane after reset, (B, N)
    psc: torch.Tensor  # a: postsynaptic current, (B, N)


def lif_step(current, state: LIFState, leak, tau_s: float, v_th: float, surrogate=("sigmoid", 0.2), detach_reset=False):
    """Pure step: ``(I[t], state) -> (a[t], s[t], u[t], new_state)``; ``leak`` is λ, a scalar or (N,) tensor.

    Δu[t] = u[t] - ũ[t-1] is what TSSL-BP's backward saves.
    """
    u = leak * state.u_reset + current
    s = spike(u - v_th, *surrogate)
    u_reset = u * (1 - (s.detach() if detach_reset else s))
    a = (1 - 1 / tau_s) * state.psc + s / tau_s
    return a, s, u, LIFState(u_reset, a)


def psc_filter(x: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Causal normalised synaptic filter over time: a[t] = (1-1/τs) a[t-1] + x[t]/τs, x (T, ...)."""
    decay = 1 - 1 / tau_s
    if not (x.requires_grad and torch.is_grad_enabled()):  # the network input: in place, the same roundings
        if x.shape[0] and cpu.usable(x):  # one C call (kernels/cpu_scan_body.h, psc_fwd) instead of 2·T torch ops
            xc = x.contiguous()
            out = torch.empty_like(xc)
            cpu.fn("psc_fwd", x.dtype)(x.shape[0], xc[0].numel(), cpu.ptr(xc), cpu.ptr(out), decay, tau_s,
                                       cpu.threads(xc.numel()))
            return out
        xs = x / tau_s
        out = torch.empty_like(xs)
        if x.shape[0]:
            out[0] = xs[0]  # 0·decay + x[0]/τs
        for t in range(1, x.shape[0]):
            torch.mul(out[t - 1], decay, out=out[t])
            out[t].add_(xs[t])
        return out
    out = []
    a = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        a = decay * a + x[t] / tau_s
        out.append(a)
    return torch.stack(out)


class LIF(Neuron):
    """LIF with first-order synaptic PSC (TSSL-BP / ScSr form), hard reset to 0, no refractory period."""

    name = "lif"
    description = "LIF, normalised first-order synaptic PSC, hard reset (TSSL-BP / ScSr-SNN)"
    params = (Param("tau_m", 16.0, "membrane time constant; leak λ = 1 - 1/τm", unit="steps"),
              Param("tau_s", 8.0, "synaptic time constant of the normalised PSC", unit="steps"),
              Param("v_th", 1.0, "firing threshold (fires when u > V_th)"),
              Param("filter_input", True, "pass the network input through the PSC filter (as TSSL-BP does)"),
              Param("detach_reset", False, "stop gradients through the reset term in surrogate BPTT"))
    has_psc = True
    has_surrogate = True
    has_leak = True
    default_surrogate = ("sigmoid", 0.2)

    def __init__(self, size: int, **params):
        super().__init__(size, **params)
        hp = self.hparams
        if hp["tau_m"] <= 1 or hp["tau_s"] <= 1:
            raise ConfigError(f"lif needs tau_m > 1 and tau_s > 1 steps; got tau_m={hp['tau_m']}, tau_s={hp['tau_s']}")
        if not hp["v_th"] > 0:  # a threshold <= 0 fires on silence every step: no spike code left to learn
            raise ConfigError(f"lif needs v_th > 0; got {hp['v_th']}")
        self.tau_s = hp["tau_s"]
        self.v_th = hp["v_th"]
        self.register_buffer("leak", torch.full((size,), 1 - 1 / hp["tau_m"]))
        kind, width = self.default_surrogate
        self.set_surrogate(kind, width)

    def initial_state(self, batch, device, dtype):
        z = torch.zeros(batch, self.size, device=device, dtype=dtype)
        return LIFState(z, z)

    def step(self, current, state, recurrent=None):
        if recurrent is not None:  # one membrane: it integrates the sum (Neuron.total_input, inlined)
            current = current + recurrent
        a, s, _, state = lif_step(
            current, state, self.leak, self.tau_s, self.v_th, self.surrogate, self.hparams["detach_reset"]
        )
        return a, s, state

    def encode_input(self, x):
        return psc_filter(x, self.tau_s) if self.hparams["filter_input"] else x


def register(register):
    register(LIF)
