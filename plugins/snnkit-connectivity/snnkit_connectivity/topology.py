"""Recurrent wiring topologies: the distance-based 3-D grid of ST-RSBP's reservoir (docs/connectivity/reservoir.md).
Used by the ``reservoir`` connectivity (:mod:`.reservoir`) and by ``sparse`` (``topology=grid3d``).

``grid3d_mask(n, generator, **params)`` returns a bool (n, n) mask, rows = post-synaptic neuron, columns =
pre-synaptic (the orientation of every weight in snnkit, W[post, pre]):

* the n neurons sit on the first n points of a 3-D grid of ``grid`` = (X, Y, Z) unit-spaced points, x fastest
  (default X = Y = 5, Z = ⌈n/25⌉: 5x5x16 for 400, 5x5x10 for 250, 5x5x8 for 200, as the reference);
* a random ``exc_fraction`` (0.8) of them is labelled excitatory, the rest inhibitory (labels only shape the
  probabilities; weight signs are learned);
* post j receives pre i with probability ``c(type_i → type_j) · exp(-d_ij² / lambda2)``, d_ij the Euclidean
  grid distance, lambda2 = 4, c = 0.45 (E→E), 0.30 (E→I), 0.60 (I→E), 0.15 (I→I);
* ``self_connections`` False (default) zeroes the diagonal (the interface of the ``sparse`` connectivity);
  True keeps the reference's possible self-loops (probability c at d = 0).

Everything is drawn from ``generator`` (the reference seeds with srand(5); here ``seed`` = 5 by default in
``reservoir``), so the same seed gives the same mask.
"""

from __future__ import annotations

import math

import torch

from snnkit_core.contract.errors import ConfigError

#: connection scale c by (pre, post) type, E = excitatory, I = inhibitory (reference values)
C_DEFAULT = {"ee": 0.45, "ei": 0.30, "ie": 0.60, "ii": 0.15}


def grid_shape(n: int, grid: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """(X, Y, Z) holding n points: ``grid`` when given (it must hold n), else (5, 5, ⌈n/25⌉)."""
    if grid is None:
        return (5, 5, max(1, math.ceil(n / 25)))
    if len(grid) != 3 or any(int(g) < 1 for g in grid) or grid[0] * grid[1] * grid[2] < n:
        raise ConfigError(f"grid3d: grid {tuple(grid)} must be 3 positive sizes holding at least {n} neurons")
    return tuple(int(g) for g in grid)


def grid3d_layout(n: int, generator: torch.Generator, grid=None, exc_fraction: float = 0.8):
    """``(positions (n, 3) float64, excitatory (n,) bool)``: grid points (x fastest) and random E labels."""
    if not 0.0 <= exc_fraction <= 1.0:
        raise ConfigError(f"grid3d: exc_fraction must be in [0, 1]; got {exc_fraction}")
    X, Y, Z = grid_shape(n, grid)
    idx = torch.arange(n)
    pos = torch.stack([idx % X, (idx // X) % Y, idx // (X * Y)], 1).to(torch.float64)
    exc = torch.zeros(n, dtype=torch.bool)
    exc[torch.randperm(n, generator=generator)[: round(exc_fraction * n)]] = True
    return pos, exc


def connection_probability(
    pos: torch.Tensor, exc: torch.Tensor, lambda2: float = 4.0, c: dict | None = None
) -> torch.Tensor:
    """(n, n) probability that post j (row) receives pre i (column): c(type_i → type_j)·exp(-d²/lambda2)."""
    c = {**C_DEFAULT, **(c or {})}
    d2 = torch.cdist(pos, pos).pow(2)
    pre_e, post_e = exc.unsqueeze(0), exc.unsqueeze(1)  # column = pre, row = post
    scale = torch.where(pre_e & post_e, c["ee"], torch.where(pre_e & ~post_e, c["ei"],
                        torch.where(~pre_e & post_e, c["ie"], c["ii"]))).to(torch.float64)
    return scale * torch.exp(-d2 / lambda2)


def grid3d_mask(n: int, generator: torch.Generator, grid=None, exc_fraction: float = 0.8, lambda2: float = 4.0,
                c: dict | None = None, self_connections: bool = False) -> torch.Tensor:
    """The bool (n, n) [post, pre] mask of ST-RSBP's 3-D grid reservoir (module doc)."""
    if lambda2 <= 0:
        raise ConfigError(f"grid3d: lambda2 must be > 0; got {lambda2}")
    pos, exc = grid3d_layout(n, generator, grid, exc_fraction)
    prob = connection_probability(pos, exc, lambda2, c)
    mask = torch.rand(n, n, generator=generator, dtype=torch.float64) < prob
    if not self_connections:
        mask.fill_diagonal_(False)
    return mask
