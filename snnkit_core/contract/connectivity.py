"""The connectivity interface: per-layer recurrence and extra layer-to-layer edges."""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from snnkit_core.contract.component import Component
from snnkit_core.contract.neuron import Neuron
from snnkit_core.contract.scan import reference_scan


class Recurrence(nn.Module):
    """What a layer feeds back to itself.

    ``structure`` is ``"diagonal"`` (one weight per neuron) or ``"dense"``; ``span`` is the furthest delay
    used. ``recurrent_input(past)`` gets ``past[j-1] = y[t-j]`` for ``j = 1..span`` (zeros before t = 0) and
    returns the recurrent input, which the scan passes to ``Neuron.step`` separately from the feedforward
    current. A recurrence may override ``scan`` with a faster exact equivalent (for example k steps per product).
    """

    structure: ClassVar[str] = "dense"
    #: the implementation kinds its own ``scan`` can use ("span", "mixed", "chunk"; see
    #: :mod:`snnkit_core.contract.implementations`): the network resolves them once and passes them to ``scan``
    kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, size: int, span: int = 1):
        super().__init__()
        self.size = size
        self.span = span
        #: the recurrent weight: (N,) for "diagonal", (N, N) for "dense" (None until a subclass sets it)
        self.register_parameter("weight", None)
        #: a fixed 0/1 mask of the weight's shape (None: every connection exists); ``recurrent_input`` applies it
        self.register_buffer("mask", None)

    def effective_weight(self) -> torch.Tensor:
        """The recurrent weight every forward uses: ``weight`` times ``mask`` where there is one ((N,) or (N, N))."""
        return self.weight if self.mask is None else self.weight * self.mask

    def recurrent_input(self, past: Sequence[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        """The recurrent input (B, N) at step t from ``past[j-1] = y[t-j]``."""
        raise NotImplementedError

    def scan(self, neuron: Neuron, current: torch.Tensor, kernels: Mapping[str, Callable] | None = None):
        """``(y, s)`` of ``neuron`` over ``current`` (T, B, N) with this recurrence. ``kernels`` maps each of
        ``kinds`` that has an implementation for this layer to a callable that returns None where it does not
        take the call (then run your own code). Default: the reference scan."""
        return reference_scan(neuron, current, self)

    def optim_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups for parameters that need their own settings (e.g. ASRC's kernel). Default: none."""
        return []

    def on_epoch_end(self, epoch: int) -> None:
        """Per-epoch schedule (e.g. ASRC's temperature)."""

    def describe(self) -> dict[str, Any]:
        """What to record about this recurrence in the run directory each epoch (e.g. learned spans)."""
        return {}


class Connectivity(Component, ABC):
    """A connectivity pattern: per-layer recurrence plus extra layer-to-layer edges.

    Registered as a class; instantiated with its parameters. Capabilities:
    ``recurrence`` is ``"none"``, ``"diagonal"`` or ``"dense"``; ``has_skip`` says whether it adds edges;
    ``output_recurrence`` says what the (spiking) output layer feeds back to itself."""

    recurrence: ClassVar[str] = "none"
    has_skip: ClassVar[bool] = False
    #: "none", "diagonal" or "dense": the structure of ``make_output_recurrence``'s recurrence
    output_recurrence: ClassVar[str] = "none"

    def __init__(self, **params: Any):
        self.hparams = self.resolve(params)

    def make_recurrence(self, layer: int, size: int) -> Recurrence | None:
        """The recurrence module of hidden layer ``layer`` (0-based), or None."""
        return None

    def make_output_recurrence(self, size: int) -> Recurrence | None:
        """The recurrence of the spiking output layer (e.g. lateral inhibition), or None. Default: None."""
        return None

    def make_feedforward(self, layer: int, in_size: int, out_size: int, bias: bool) -> nn.Module | None:
        """The input map of hidden layer ``layer`` ((…, in_size) -> (…, out_size), e.g. a convolution over the
        input channels), or None for the default ``nn.Linear``. Default: None."""
        return None

    def input_delay(self, layer: int) -> int:
        """Steps (0 or more) by which layer ``layer``'s feedforward input arrives late (the output layer is
        ``layer = number of hidden layers``): ``I[t] = W y_pre[t - d]``, zeros before. Default: 0."""
        return 0

    def skip_edges(self, num_hidden: int) -> list[tuple[int, int]]:
        """Extra feedforward edges ``(src, dst)`` between hidden layers (0-based, ``src < dst - 1``)."""
        return []
