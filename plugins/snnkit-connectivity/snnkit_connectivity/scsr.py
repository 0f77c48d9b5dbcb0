"""ScSr-SNN connectivity (Zhang & Li, AAAI 2021; docs/connectivity/scsr.md, 'Equations').

* ``ff``: no recurrence, no skips (the feedforward baseline).
* ``self`` (Sr): each hidden neuron feeds only itself through one weight with a 1-step delay,
  ``I[t] += w_s ⊙ y[t-1]`` where y is the neuron's output (the PSC for ``lif``).
* ``skip`` (Sc): an extra feedforward edge from hidden layer l to hidden layer l+2, added at the same step
  (no delay): ``I^(l+2)[t] += W^(l,l+2) y^(l)[t]``. ScSr's 3-layer nets get exactly 1 -> 3.
* ``srsc``: both.

Initialisation [the paper gives none; our choice]: ``w_s ~ U(-init_scale, init_scale)`` per neuron
(ST-RSBP's self-loop precedent, U(-1, 1)·strength); skip weights use the network's init (kaiming_normal,
like every TSSL-BP linear layer).
"""

from __future__ import annotations

import torch
from torch import nn

from snnkit_core import Connectivity, Param, Recurrence
from snnkit_core.contract.errors import ConfigError


class SelfRecurrence(Recurrence):
    """Diagonal recurrence with delay 1: ``w_s ⊙ y[t-1]``."""

    structure = "diagonal"

    def __init__(self, size: int, init_scale: float):
        if not init_scale >= 0:
            raise ConfigError("conn.init_scale must be >= 0 (self weights start in U(-init_scale, init_scale)); got "
                              f"{init_scale}")
        super().__init__(size, span=1)
        self.weight = nn.Parameter(torch.empty(size).uniform_(-init_scale, init_scale))

    def recurrent_input(self, past):
        return self.weight * past[0]


_INIT = Param("init_scale", 0.5, "self weights start uniform in [-init_scale, init_scale]")


class FeedForward(Connectivity):
    """No recurrence and no skip edges."""

    name = "ff"
    description = "feedforward: no recurrence, no skip edges"


class SelfRecurrent(Connectivity):
    """Sr: one recurrent weight per neuron, delay 1 step."""

    name = "self"
    description = "Sr: one self-recurrent weight per neuron, 1-step delay (ScSr-SNN)"
    recurrence = "diagonal"
    params = (_INIT,)

    def make_recurrence(self, layer, size):
        return SelfRecurrence(size, self.hparams["init_scale"])


def _skip_edges(num_hidden: int) -> list[tuple[int, int]]:
    return [(i, i + 2) for i in range(num_hidden - 2)]


class Skip(Connectivity):
    """Sc: extra edges hidden l -> hidden l+2 at the same step."""

    name = "skip"
    description = "Sc: skip edges from hidden layer l to l+2, no delay (ScSr-SNN; 1 -> 3 for three layers)"
    has_skip = True

    def skip_edges(self, num_hidden):
        return _skip_edges(num_hidden)


class SrSc(SelfRecurrent):
    """SrSc: self-recurrence plus l -> l+2 skip edges."""

    name = "srsc"
    description = "SrSc: self-recurrence (delay 1) plus skip edges l -> l+2 (ScSr-SNN)"
    has_skip = True

    def skip_edges(self, num_hidden):
        return _skip_edges(num_hidden)


def register(register):
    for cls in (FeedForward, SelfRecurrent, Skip, SrSc):
        register(cls)
