"""``lif-soft``: leaky integrate-and-fire with soft (subtractive) reset, the neuron of SRC/ASRC-SNN.

docs/methods/asrc.md, 'Neuron lif-soft' (Xu et al. 2025). Per neuron, per step t, with U[-1] = 0 for every sample:

    H[t] = λ·U[t-1] + I[t]          λ = ``decay`` (0.5); the input is summed directly, no (1-λ) factor
    S[t] = Θ(H[t] - V_th)           inclusive: fires on H - V_th >= 0
    U[t] = H[t] - V_th·S[t]         soft reset; NOT detached by default, so the gradient flows through it

The surrogate derivative of Θ is the triangle σ'(x) = max(0, γ - |x|)/γ² with γ = 1 (the BPTT rule may pick
another). The output y is the spike train S itself (no synaptic trace), which is what the next layer's
weights and the layer's own recurrent matrix multiply.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from snnkit_core import Neuron, Param
from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.surrogate import spike, surrogate_grad


class SoftState(NamedTuple):
    u: torch.Tensor  # U: membrane after the soft reset, (B, N)


def lif_soft_step(current, state: SoftState, decay, v_th: float, surrogate=("triangle", 1.0), detach_reset=False):
    """Pure step ``(I[t], state) -> (S[t], H[t], new_state)``."""
    h = decay * state.u + current
    s = spike(h - v_th, surrogate[0], surrogate[1], inclusive=True)
    u = h - v_th * (s.detach() if detach_reset else s)
    return s, h, SoftState(u)


class SoftScan(torch.autograd.Function):
    """L steps of lif-soft as one autograd node: an in-place forward loop and a hand-written reverse loop.

    Backward (x_t = H[t] - V_th, σ'_t its surrogate derivative, g_U the gradient arriving at U[t]):
        dL/dH[t] = g_S[t]·σ'_t + g_U[t]·(1 - V_th·σ'_t)      (detached reset: g_S[t]·σ'_t + g_U[t])
        dL/dI[t] = dL/dH[t],   g_U[t-1] = λ·dL/dH[t]
    The per-step autograd path (``step``) is the oracle it is tested against.
    """

    @staticmethod
    def forward(ctx, current, u0, decay, v_th, kind, width, detach_reset):
        L = current.shape[0]
        h_all = torch.empty_like(current)
        s_all = torch.empty_like(current)
        u = u0.clone()
        for t in range(L):
            h = h_all[t]
            torch.add(current[t], u, alpha=decay, out=h)
            torch.ge(h, v_th, out=s_all[t])
            torch.sub(h, s_all[t], alpha=v_th, out=u)
        ctx.save_for_backward(h_all)
        ctx.consts = (decay, v_th, kind, width, detach_reset)
        return s_all, u

    @staticmethod
    def backward(ctx, g_s, g_u):
        (h_all,) = ctx.saved_tensors
        decay, v_th, kind, width, detach_reset = ctx.consts
        sg = surrogate_grad(h_all - v_th, kind, width)
        g_in = torch.empty_like(h_all)
        gu = torch.zeros_like(h_all[0]) if g_u is None else g_u.clone()
        if g_s is None:
            g_s = torch.zeros_like(h_all)
        for t in range(h_all.shape[0] - 1, -1, -1):
            if detach_reset:
                torch.addcmul(gu, sg[t], g_s[t], out=g_in[t])
            else:
                torch.addcmul(gu, sg[t], torch.add(g_s[t], gu, alpha=-v_th), out=g_in[t])
            gu = g_in[t] * decay
        return g_in, gu, None, None, None, None, None


class LIFSoft(Neuron):
    """LIF with soft reset (subtract V_th), output = spikes, triangle surrogate (SRC/ASRC-SNN)."""

    name = "lif-soft"
    description = "LIF with soft reset U = H - V_th·S, output spikes, triangle surrogate γ=1 (SRC/ASRC)"
    params = (Param("decay", 0.5, "membrane decay λ in H[t] = λ·U[t-1] + I[t]"),
              Param("v_th", 1.0, "firing threshold (fires when H - V_th >= 0)"),
              Param("detach_reset", False, "stop gradients through the soft-reset term (ASRC keeps them: False)"))
    has_psc = False
    has_surrogate = True
    has_leak = False
    default_surrogate = ("triangle", 1.0)

    def __init__(self, size: int, **params):
        super().__init__(size, **params)
        hp = self.hparams
        if not 0.0 <= hp["decay"] <= 1.0:
            raise ConfigError(f"lif-soft needs 0 <= decay <= 1; got {hp['decay']}")
        if hp["v_th"] <= 0:
            raise ConfigError(f"lif-soft needs v_th > 0; got {hp['v_th']}")
        self.decay = float(hp["decay"])
        self.v_th = float(hp["v_th"])
        self.detach_reset = bool(hp["detach_reset"])
        self.set_surrogate(*self.default_surrogate)

    def initial_state(self, batch, device, dtype):
        return SoftState(torch.zeros(batch, self.size, device=device, dtype=dtype))

    def step(self, current, state, recurrent=None):
        if recurrent is not None:  # one membrane: it integrates the sum (Neuron.total_input, inlined)
            current = current + recurrent
        s, _, state = lif_soft_step(current, state, self.decay, self.v_th, self.surrogate, self.detach_reset)
        return s, s, state

    def scan_chunk(self, current, state, recurrent=None):
        """``current`` (L, B, N) -> ``(y, s, state)`` for L steps as one autograd node (same numbers as ``step``).

        Recurrences whose input for the next L steps is known in advance (SRC's chunks) call this instead of
        looping ``step``; it saves the per-op autograd graph of the step-by-step path. (Its Triton and C
        versions are the "chunk" implementations of :mod:`snnkit_neurons.scans`.)
        """
        current = self.total_input(current, recurrent)
        kind, width = self.surrogate
        s, u = SoftScan.apply(current, state.u, self.decay, self.v_th, kind, width, self.detach_reset)
        return s, s, SoftState(u)


def register(register):
    register(LIFSoft)
