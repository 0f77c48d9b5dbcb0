"""The neuron interface: per-layer dynamics over explicit state (see :mod:`snnkit_core.contract.interfaces`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from snnkit_core.contract.component import Component
from snnkit_core.contract.errors import IncompatibleError


class Neuron(Component, nn.Module, ABC):
    """Per-layer dynamics of ``size`` neurons: ``step`` is a pure function of the inputs and the explicit state (a
    NamedTuple), looped over time by the reference scan, the oracle of every faster one; the module holds only
    parameters. Every member a rule or connectivity uses is declared here with a default (docs/plugins.md)."""

    #: output ``y`` is a normalised first-order PSC with time constant ``tau_s`` rather than the raw spikes
    has_psc: ClassVar[bool] = False
    #: ``step`` is differentiable through a surrogate spike derivative chosen by ``set_surrogate``
    has_surrogate: ClassVar[bool] = True
    #: the membrane decays by the per-neuron tensor ``leak`` (λ), which ``make_leak_trainable`` can train
    has_leak: ClassVar[bool] = False
    #: ``step`` is ST-RSBP's neuron (docs/rules/st-rsbp.md): first-order synaptic response, hard reset and a
    #: refractory period; it exposes ``tau_m``, ``syn_tau``, ``t_ref`` (steps) and ``delay`` (bool)
    has_rsbp_dynamics: ClassVar[bool] = False
    #: ``step`` takes ``hook=``: a function applied to the spikes (B, N) inside the step before they feed the state,
    #: so a rule can replace their gradient (reward-prop); neurons without it are called without ``hook``
    has_spike_hook: ClassVar[bool] = False
    #: ``step`` depends on its two inputs only through ``current + recurrent``, so a fast path may add them first
    sums_inputs: ClassVar[bool] = True
    #: the surrogate ``(kind, width)`` a neuron uses until a rule calls ``set_surrogate``
    default_surrogate: ClassVar[tuple[str, float]] = ("sigmoid", 0.2)
    #: synaptic time constant of the PSC output in steps (``has_psc`` neurons set it), else None
    tau_s: float | None = None
    #: firing threshold (dimensionless), for rules that use it in their backward (tssl-bp), else None
    v_th: float | None = None

    def __init__(self, size: int, **params: Any):
        nn.Module.__init__(self)
        self.size = size
        self.hparams = self.resolve(params)
        #: per-neuron leak λ (N,) as a buffer or Parameter (``has_leak`` neurons set it), else None
        self.register_buffer("leak", None)
        self.surrogate = self.default_surrogate

    @abstractmethod
    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> NamedTuple:
        """Zero state for a batch (every sample starts from rest)."""

    @abstractmethod
    def step(self, current: torch.Tensor, state: NamedTuple, recurrent: torch.Tensor | None = None) -> tuple:
        """One step: ``current`` and ``recurrent`` input (B, N; or None) -> ``(y, s, new_state)``, each (B, N)."""

    def total_input(self, current: torch.Tensor, recurrent: torch.Tensor | None) -> torch.Tensor:
        """``current + recurrent`` (``current`` without recurrent input): what a one-membrane neuron integrates."""
        return current if recurrent is None else current + recurrent

    def scan_chunk(self, current: torch.Tensor, state: NamedTuple, recurrent: torch.Tensor | None = None):
        """``current`` (L, B, N), ``recurrent`` (L, B, N or None) -> ``(y, s, state)``, L steps. Default: loops step."""
        ys, ss = [], []
        recs = recurrent.unbind(0) if recurrent is not None else [None] * current.shape[0]
        for i_t, r_t in zip(current.unbind(0), recs):
            y, s, state = self.step(i_t, state, r_t)
            ys.append(y)
            ss.append(s)
        return torch.stack(ys), torch.stack(ss), state

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        """Map the network input (T, B, C) to what the first weight layer multiplies. Default: unchanged."""
        return x

    def clamp_(self) -> None:
        """Project trainable neuron parameters back to their valid range (called after each optimizer step)."""

    def set_surrogate(self, kind: str, width: float) -> None:
        """Choose the surrogate ``(kind, width)`` of ``step`` (bptt calls it). Default: stores ``self.surrogate``."""
        self.surrogate = (kind, width)

    def make_leak_trainable(self) -> nn.Parameter:
        """Turn the per-neuron ``leak`` buffer into a trainable Parameter and return it (bip calls it)."""
        if not self.has_leak or self.leak is None:
            raise IncompatibleError(f"neuron {self.name!r} has no per-neuron leak to train (has_leak is False)")
        if not isinstance(self.leak, nn.Parameter):
            value = self.leak.detach().clone()
            del self._buffers["leak"]
            self.leak = nn.Parameter(value)
        return self.leak

    def optim_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups for parameters that need their own settings (``params``, ``lr``, ...). Default: none."""
        return []
