"""Spike encoders: BSA, Poisson, threshold crossing."""

from __future__ import annotations

import numpy as np
import pytest

from snnkit_datasets.encoders import bsa_decode, bsa_encode, bsa_filter, delta_encode, poisson_encode


def _smooth(t_len=200):
    t = np.linspace(0, 1, t_len)
    return np.stack(
        [0.5 + 0.4 * np.sin(2 * np.pi * 2 * t), 0.3 + 0.2 * np.cos(2 * np.pi * 3 * t + 1),
         0.8 * np.exp(-(((t - 0.5) / 0.15) ** 2))],
        axis=1,
    )


def test_bsa_reconstruction_by_filtering_tracks_a_smooth_input():
    x = _smooth()
    s = bsa_encode(x)
    assert s.shape == x.shape and set(np.unique(s)) <= {0.0, 1.0}
    r = bsa_decode(s)
    for c in range(x.shape[1]):
        assert np.corrcoef(x[:, c], r[:, c])[0, 1] > 0.8
    assert np.isclose(bsa_filter().sum(), 1.0)
    assert bsa_encode(np.zeros((50, 2))).sum() == 0


def test_poisson_rates_match_and_are_seeded():
    x = np.tile(np.array([0.0, 0.1, 0.5, 0.9]), (20000, 1))
    s = poisson_encode(x, seed=3)
    assert np.allclose(s.mean(axis=0), [0.0, 0.1, 0.5, 0.9], atol=0.015)
    assert np.array_equal(s, poisson_encode(x, seed=3)) and not np.array_equal(s, poisson_encode(x, seed=4))
    assert np.allclose(poisson_encode(x, max_prob=0.5, seed=0).mean(axis=0)[3], 0.45, atol=0.015)


def test_delta_encoder_counts_crossings_up_and_down():
    up = np.linspace(0, 1, 51)
    x = np.concatenate([up, up[::-1][1:]])[:, None]
    s = delta_encode(x, threshold=0.1)
    assert s.shape == (x.shape[0], 2)
    assert s[:, 0].sum() == 10 and s[:, 1].sum() == 10
    assert s[:51, 1].sum() == 0 and s[51:, 0].sum() == 0
    # a jump of 0.35 gives 3 crossings at once in count mode, spread over steps in binary mode
    step = np.array([[0.0], [0.35], [0.35], [0.35], [0.35]])
    assert delta_encode(step, 0.1, binary=False)[:, 0].tolist() == [0, 3, 0, 0, 0]
    assert delta_encode(step, 0.1, binary=True)[:, 0].tolist() == [0, 1, 1, 1, 0]
    with pytest.raises(ValueError):
        delta_encode(step, 0.0)
