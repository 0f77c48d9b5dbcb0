"""``reservoir``: a recurrent matrix on chosen hidden layers only, dense or wired by ST-RSBP's 3-D grid.

ST-RSBP's "400-R400" network (docs/rules/st-rsbp.md) has a recurrent ("R") layer after a feedforward
one; ``dense`` would make every hidden layer recurrent. Per chosen layer with output s:

    I_r[t] = (V ⊙ M) s[t-1]        M = 1 (``topology=dense``) or ``grid3d_mask`` (:mod:`.topology`)

The masked recurrence is :class:`.sparse.MaskedRecurrence` (the mask is a checkpointed buffer;
``effective_weight()`` is what the forward and ``st-rsbp`` use). The grid mask is seeded with ``seed`` + layer
(the reference seeds with srand(5)), independent of the run seed, so every run of a configuration has the same
wiring. ``sparse --set conn.sparse.topology=grid3d`` gives the same grid under the run-seeded ``sparse`` contract.
"""

from __future__ import annotations

import torch

from snnkit_core import Connectivity, Param

from .sparse import MaskedRecurrence, parse_layers
from .topology import grid3d_mask


class Reservoir(Connectivity):
    """A recurrent matrix on the chosen hidden layers only (ST-RSBP's "400-R400": layer 1 recurrent), dense or
    wired by the 3-D grid of :func:`.topology.grid3d_mask`."""

    name = "reservoir"
    description = ("recurrence V s[t-1] on chosen hidden layers only (e.g. ST-RSBP's 400-R400), dense or the 3-D "
                   "grid with E/I distance-based probabilities")
    recurrence = "dense"
    params = (
        Param("layers", "1", "0-based hidden layers that get a recurrence (comma list), or 'all'"),
        Param("topology", "grid3d", "grid3d: ST-RSBP's distance-based E/I wiring; dense: every connection",
              choices=("grid3d", "dense")),
        Param("seed", 5, "seed of the grid3d mask (the reference's srand(5)); layer l uses seed + l"),
        Param("exc_fraction", 0.8, "grid3d: share of neurons labelled excitatory"),
        Param("lambda2", 4.0, "grid3d: λ² of exp(-d²/λ²), in squared grid units"),
        Param("self_connections", False, "grid3d: allow self-loops (the reference does; off matches `sparse`)"),
    )

    def make_recurrence(self, layer, size):
        chosen = parse_layers(self.hparams["layers"], "reservoir", "layers")
        if chosen is not None and layer not in chosen:
            return None
        mask = None
        if self.hparams["topology"] == "grid3d":
            g = torch.Generator().manual_seed(int(self.hparams["seed"]) + layer)
            mask = grid3d_mask(size, g, exc_fraction=self.hparams["exc_fraction"], lambda2=self.hparams["lambda2"],
                               self_connections=self.hparams["self_connections"])
        return MaskedRecurrence(size, mask)


def register(register):
    register(Reservoir)
