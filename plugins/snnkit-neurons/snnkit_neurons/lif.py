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
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from snnkit_core.contract.errors import ConfigError, IncompatibleError
from snnkit_core import Neuron, Param
from snnkit_core.contract.surrogate import spike


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
    params = (
        Param("tau_m", 16.0, "membrane time constant; leak λ = 1 - 1/τm", unit="steps"),
        Param("tau_s", 8.0, "synaptic time constant of the normalised PSC", unit="steps"),
        Param("v_th", 1.0, "firing threshold (fires when u > V_th)"),
        Param("filter_input", True, "pass the network input through the PSC filter (as TSSL-BP does)"),
        Param("detach_reset", False, "stop gradients through the reset term in surrogate BPTT"),
    )
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
        a, s, _, state = lif_step(current, state, self.leak, self.tau_s, self.v_th, self.surrogate, self.hparams["detach_reset"])
        return a, s, state

    def kernel_reason(self, device):
        """None when the Triton kernels can run on ``device`` with this neuron's surrogate, else why not."""
        from . import kernels

        return kernels.unusable_reason(device.type, self.surrogate[0], "lif_scan", "lif")

    def fused_scan_reason(self, recurrence):
        """The kernel takes no recurrence or a diagonal 1-step one (ScSr's self weights)."""
        if recurrence is None or (recurrence.structure == "diagonal" and recurrence.span == 1 and recurrence.weight is not None):
            return None
        return f"the lif kernel takes no {recurrence.structure} recurrence of span {recurrence.span}"

    def fused_scan(self, current, recurrence):
        """The whole scan as one Triton kernel per direction (see kernels/lif_scan.py); None for a non-float32 input."""
        from . import kernels

        if current.dtype != torch.float32 or self.kernel_mode == "off" or not kernels.usable(current.device.type):
            return None
        from .kernels.lif_scan import lif_scan

        kind, width = self.surrogate
        w = recurrence.weight if recurrence is not None else None
        try:
            return lif_scan(current, self.leak, w, self.tau_s, self.v_th, kind, width, self.hparams["detach_reset"])
        except Exception as exc:  # compile/launch failure (the backward compiles on first use and cannot fall back)
            kernels.disable(exc)
            if self.kernel_mode == "required":
                raise IncompatibleError(f"--backend triton: neuron 'lif' has no fused kernel here: it failed ({exc})") from None
            return None

    def fast_scan_reason(self, recurrence, device):
        """The CPU scan takes a CPU layer with no recurrence or the diagonal 1-step self term, and a surrogate it implements."""
        from .kernels.cpu import SURROGATE

        if device.type != "cpu":
            return f"the lif CPU scan runs on the CPU, not {device.type}"
        if recurrence is not None and not (recurrence.structure == "diagonal" and recurrence.span == 1 and recurrence.weight is not None):
            return f"the lif CPU scan takes no {recurrence.structure} recurrence of span {recurrence.span}"
        if self.surrogate[0] not in SURROGATE:
            return f"the lif CPU scan has no {self.surrogate[0]!r} surrogate"
        return None

    def fast_scan(self, current, recurrence):
        """On the CPU: the whole scan as one autograd node, forward and reverse-time backward each one call into
        C (kernels/cpu_scan.c, built on install or first use), or the same node's torch loop where C cannot be
        built (kernels/lif_cpu.py). None elsewhere (another device, a recurrence other than the self term)."""
        if current.device.type != "cpu" or current.dtype not in (torch.float32, torch.float64):
            return None
        if recurrence is not None and not (recurrence.structure == "diagonal" and recurrence.span == 1 and hasattr(recurrence, "weight")):
            return None
        from .kernels.cpu import SURROGATE
        from .kernels.lif_cpu import lif_scan_cpu

        kind, width = self.surrogate
        if kind not in SURROGATE:
            return None
        w = recurrence.weight if recurrence is not None else None
        return lif_scan_cpu(current, self.leak, w, self.tau_s, self.v_th, kind, width, self.hparams["detach_reset"])

    def encode_input(self, x):
        return psc_filter(x, self.tau_s) if self.hparams["filter_input"] else x


def register(register):
    register(LIF)
