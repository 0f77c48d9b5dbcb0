"""``local``: each hidden neuron hears its neighbours within ``radius`` one step later (a banded recurrence).

Per hidden layer of N neurons with output y, a dense weight V (N, N) under a fixed 0/1 band mask M:

    R[t] = (V ⊙ M) y[t-1],     M[i, j] = 1 if |i - j| <= radius (ring distance) else 0

R[t] reaches the neuron as ``step``'s recurrent input. V starts uniform in [-init_scale, init_scale] inside the
band. The mask is a buffer (saved, never trained) and the gradient of V outside the band is zero.
"""

from __future__ import annotations

import torch
from torch import nn

from snnkit_core import Connectivity, Param, Recurrence


def band_mask(size: int, radius: int) -> torch.Tensor:
    """M (N, N): 1 where the ring distance between i and j is at most ``radius``."""
    i = torch.arange(size)
    d = (i[:, None] - i[None, :]).abs()
    return (torch.minimum(d, size - d) <= radius).to(torch.float32)


class LocalRecurrence(Recurrence):
    """Dense structure, banded by a mask, 1-step delay."""

    structure = "dense"

    def __init__(self, size: int, radius: int, init_scale: float):
        super().__init__(size, span=1)
        self.register_buffer("mask", band_mask(size, radius))
        self.weight = nn.Parameter(torch.empty(size, size).uniform_(-init_scale, init_scale) * self.mask)

    def recurrent_input(self, past):
        return past[0] @ self.effective_weight().t()  # V ⊙ M (Recurrence.effective_weight)


class Local(Connectivity):
    """Banded recurrence: each neuron hears its ring neighbours within ``radius`` (example plugin)."""

    name = "local"
    description = ("each neuron hears its neighbours within a radius, one step later (masked dense recurrence; "
                   "example plugin)")
    recurrence = "dense"
    params = (
        Param("radius", 1, "neighbours on each side (ring distance)"),
        Param("init_scale", 0.5, "recurrent weights start uniform in [-init_scale, init_scale]"),
    )

    def make_recurrence(self, layer, size):
        return LocalRecurrence(size, self.hparams["radius"], self.hparams["init_scale"])
