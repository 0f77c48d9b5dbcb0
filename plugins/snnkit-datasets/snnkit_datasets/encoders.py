"""Spike encoders: real-valued features (T, C) -> spike trains, in numpy.

* :func:`delta_encode`: threshold (send-on-delta) crossing with separate up and down channels, output
  (T, 2C): columns ``0..C-1`` are up-crossings, ``C..2C-1`` down-crossings. Each channel keeps a reference
  level (starting at its first value); whenever the signal is ``threshold`` above (below) it, an up (down)
  spike is sent and the reference moves by ``threshold``. ``binary=True`` sends at most one spike per step
  (the rest of the change carries over to later steps); ``binary=False`` gives the count of crossings.
* :func:`poisson_encode`: Bernoulli spikes per step with probability ``clip(x, 0, 1) * max_prob``
  (the discrete-time Poisson process), seeded, reproducible.
* :func:`bsa_encode`: Ben's Spiker Algorithm (Schrauwen & Van Campenhout 2003), how ST-RSBP turns the 78
  Lyon-ear channels into spike trains (ST-RSBP's TI46 input). BSA assumes the signal is the output of a low-pass FIR
  filter ``h`` driven by the spikes. At each step ``t`` it compares the error of placing a spike,
  ``e1 = sum_j |x[t+j] - h[j]|``, with the error of not placing one, ``e2 = sum_j |x[t+j]|``; it fires when
  ``e1 <= threshold * e2`` and then subtracts ``h`` from the signal ahead (greedy deconvolution). The filter
  (:func:`bsa_filter`) is a Hann window of ``window`` taps normalised to unit sum times ``gain``; with
  ``gain = 1`` a constant input of 1 is reproduced by a spike every step, so the input should lie in
  ``[0, gain]`` (the cochleagram is normalised to [0, 1]). ``threshold = 0.955`` is the value of the BSA
  paper. :func:`bsa_decode` is the reconstruction: causal convolution of the spikes with ``h``.

All encoders return float32 arrays of the same time length as the input.
"""

from __future__ import annotations

import numpy as np


def _as_tc(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"encoders want features (T, C), got shape {x.shape}")
    return x


def delta_encode(x, threshold: float = 0.1, binary: bool = True) -> np.ndarray:
    """Up/down threshold-crossing spikes (T, 2C) of features (T, C)."""
    x = _as_tc(x)
    if threshold <= 0:
        raise ValueError("delta_encode threshold must be positive")
    t_len, c = x.shape
    ref = x[0].copy()
    out = np.zeros((t_len, 2 * c), dtype=np.float32)
    for t in range(1, t_len):
        d = (x[t] - ref) / threshold
        if binary:
            up = d >= 1
            down = d <= -1
            ref += threshold * (up.astype(np.float64) - down)
        else:
            up = np.floor(np.maximum(d, 0) + 1e-9)
            down = np.floor(np.maximum(-d, 0) + 1e-9)
            ref += threshold * (up - down)
        out[t, :c] = up
        out[t, c:] = down
    return out


def poisson_encode(x, max_prob: float = 1.0, seed: int = 0) -> np.ndarray:
    """Bernoulli spikes (T, C) with per-step probability clip(x, 0, 1) * max_prob; seeded."""
    x = _as_tc(x)
    p = np.clip(x, 0.0, 1.0) * max_prob
    rng = np.random.default_rng(seed)
    return (rng.random(x.shape) < p).astype(np.float32)


def bsa_filter(window: int = 8, gain: float = 1.0) -> np.ndarray:
    """The BSA reconstruction filter: a Hann window (``window`` taps, no zero end-points), unit sum x gain."""
    h = np.hanning(window + 2)[1:-1]
    return h / h.sum() * gain


def bsa_encode(
    x, window: int = 8, threshold: float = 0.955, gain: float = 1.0, filt: np.ndarray | None = None
) -> np.ndarray:
    """Ben's Spiker Algorithm: 0/1 spikes (T, C) whose filtering by ``bsa_filter`` approximates ``x``."""
    x = _as_tc(x).T.copy()  # (C, T), consumed as spikes are placed
    h = bsa_filter(window, gain) if filt is None else np.asarray(filt, dtype=np.float64)
    c, t_len = x.shape
    out = np.zeros((c, t_len), dtype=np.float32)
    for t in range(t_len):
        m = min(h.size, t_len - t)
        seg = x[:, t : t + m]
        e1 = np.abs(seg - h[:m]).sum(axis=1)
        e2 = np.abs(seg).sum(axis=1)
        fire = (e1 <= threshold * e2) & (e2 > 0)
        if fire.any():
            x[fire, t : t + m] -= h[:m]
            out[fire, t] = 1.0
    return out.T


def bsa_decode(spikes, window: int = 8, gain: float = 1.0, filt: np.ndarray | None = None) -> np.ndarray:
    """Reconstruction (T, C): causal convolution of the spikes with the BSA filter."""
    s = _as_tc(spikes)
    h = bsa_filter(window, gain) if filt is None else np.asarray(filt, dtype=np.float64)
    t_len = s.shape[0]
    out = np.zeros_like(s)
    for j, hj in enumerate(h[:t_len]):
        out[j:] += hj * s[: t_len - j]
    return out.astype(np.float32)
