"""ST-RSBP's 3-D grid reservoir mask (spec §4.8) and the ``reservoir`` connectivity."""

import math

import torch

from snnkit.testing import ConnectivityContract
from snnkit_connectivity.reservoir import Reservoir
from snnkit_connectivity.topology import C_DEFAULT, connection_probability, grid3d_layout, grid3d_mask, grid_shape


def test_grid_shape_and_layout_follow_the_reference():
    assert grid_shape(400) == (5, 5, 16) and grid_shape(250) == (5, 5, 10) and grid_shape(200) == (5, 5, 8)
    pos, exc = grid3d_layout(400, torch.Generator().manual_seed(5))
    assert pos.shape == (400, 3) and tuple(pos.max(0).values.tolist()) == (4.0, 4.0, 15.0)
    assert int(exc.sum()) == 320  # 80 % excitatory


def test_mask_is_seeded_bool_and_has_no_self_loops_by_default():
    a = grid3d_mask(400, torch.Generator().manual_seed(5))
    b = grid3d_mask(400, torch.Generator().manual_seed(5))
    c = grid3d_mask(400, torch.Generator().manual_seed(6))
    assert a.dtype == torch.bool and a.shape == (400, 400) and torch.equal(a, b) and not torch.equal(a, c)
    assert not bool(a.diagonal().any())
    with_self = grid3d_mask(400, torch.Generator().manual_seed(5), self_connections=True)
    assert bool(with_self.diagonal().any())


def test_connection_rates_by_type_match_the_probabilities():
    """Pooled over 10 masks, each E/I pair type connects as often as Σ c·exp(-d²/4) predicts (within 5 %)."""
    n, hits, expect = 400, {k: 0.0 for k in C_DEFAULT}, {k: 0.0 for k in C_DEFAULT}
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        pos, exc = grid3d_layout(n, g)
        prob = connection_probability(pos, exc)
        g = torch.Generator().manual_seed(seed)
        mask = grid3d_mask(n, g, self_connections=True)
        pre, post = exc.unsqueeze(0).expand(n, n), exc.unsqueeze(1).expand(n, n)
        for key, sel in {"ee": pre & post, "ei": pre & ~post, "ie": ~pre & post, "ii": ~pre & ~post}.items():
            hits[key] += float(mask[sel].sum())
            expect[key] += float(prob[sel].sum())
    for key in C_DEFAULT:
        assert abs(hits[key] / expect[key] - 1) < 0.05, (key, hits[key], expect[key])
    # I->E pairs connect more often than E->E, E->I, I->I at the same distances (c = 0.60 vs 0.45, 0.30, 0.15)
    assert C_DEFAULT["ie"] > C_DEFAULT["ee"] > C_DEFAULT["ei"] > C_DEFAULT["ii"]


def test_connection_rate_falls_with_distance():
    g = torch.Generator().manual_seed(5)
    pos, _ = grid3d_layout(400, g)
    d2 = torch.cdist(pos, pos).pow(2).round()  # integer squared grid distances
    masks = torch.stack([grid3d_mask(400, torch.Generator().manual_seed(s)) for s in range(5)]).float().mean(0)
    rates = [float(masks[d2 == k].mean()) for k in (1.0, 2.0, 4.0, 9.0)]
    assert rates[0] > rates[1] > rates[2] > rates[3]
    c_mean = 0.8 * 0.8 * 0.45 + 0.8 * 0.2 * (0.30 + 0.60) + 0.2 * 0.2 * 0.15  # mean c over random E/I pairs
    for k, r in zip((1.0, 2.0, 4.0, 9.0), rates):
        assert abs(r / (c_mean * math.exp(-k / 4)) - 1) < 0.15, (k, r)
    assert float(masks[d2 > 25].mean()) < 0.6 * math.exp(-25 / 4)  # far pairs: below the largest possible rate


def test_reservoir_puts_a_masked_recurrence_on_chosen_layers_only():
    conn = Reservoir(layers="1")
    assert conn.make_recurrence(0, 400) is None
    rec = conn.make_recurrence(1, 400)
    assert rec.mask is not None and torch.equal(rec.effective_weight(), rec.weight * rec.mask)
    assert torch.equal(rec.mask, grid3d_mask(400, torch.Generator().manual_seed(6)))  # seed 5 + layer 1
    dense = Reservoir(layers="all", topology="dense").make_recurrence(0, 8)
    assert dense.mask is None


class TestReservoirContract(ConnectivityContract):
    conn_cls = Reservoir
    params = {"layers": "all", "topology": "grid3d", "lambda2": 50.0}
