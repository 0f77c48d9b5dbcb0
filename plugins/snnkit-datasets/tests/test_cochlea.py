"""Lyon passive-ear cochleagram and MFCC front-ends."""

from __future__ import annotations

import numpy as np

from snnkit_datasets.cochlea import cascade_response, centre_frequencies, lyon_cochleagram
from snnkit_datasets.mfcc import dct_matrix, deltas, mfcc, num_frames

SR = 12500


def test_78_channels_at_12_5_khz_span_the_band_high_first():
    cf = centre_frequencies(SR)
    assert cf.shape == (78,)
    assert np.all(np.diff(cf) < 0)  # channel 0 = highest frequency
    assert 6000 < cf[0] < SR / 2 and 50 < cf[-1] < 150


def test_shape_range_and_dtype():
    t = np.arange(int(0.3 * SR)) / SR
    c = lyon_cochleagram(0.3 * np.sin(2 * np.pi * 800 * t), SR)
    assert c.shape == (100, 78) and c.dtype == np.float32
    assert c.min() >= 0 and abs(c.max() - 1) < 1e-6
    assert lyon_cochleagram(np.zeros(2000), SR).max() == 0


def test_tone_sweep_peak_channel_moves_monotonically_with_frequency():
    t = np.arange(int(0.25 * SR)) / SR
    cf = centre_frequencies(SR)
    freqs = [150, 300, 600, 1200, 2400, 4800]
    peaks = []
    for f in freqs:
        c = lyon_cochleagram(0.3 * np.sin(2 * np.pi * f * t), SR)
        peaks.append(int(c.mean(axis=0).argmax()))
    assert all(a > b for a, b in zip(peaks, peaks[1:])), peaks  # higher frequency -> lower channel index
    for f, p in zip(freqs, peaks):
        assert abs(p - int(np.abs(cf - f).argmin())) <= 2, (f, p)  # the peak is at the channel tuned to f


def test_impulse_responses_decay_within_the_padding():
    h = cascade_response(SR, 4097)
    ir = np.fft.irfft(h, 8192)
    assert np.abs(ir[:, int(0.1 * SR) :]).max() < 1e-6 * np.abs(ir).max()


def test_agc_compresses_level_differences():
    t = np.arange(int(0.4 * SR)) / SR
    tone = np.sin(2 * np.pi * 1000 * t)
    loud = lyon_cochleagram(0.5 * tone, SR, normalize=False)[50:].mean()
    soft = lyon_cochleagram(0.005 * tone, SR, normalize=False)[50:].mean()
    raw_loud = lyon_cochleagram(0.5 * tone, SR, normalize=False, use_agc=False)[50:].mean()
    raw_soft = lyon_cochleagram(0.005 * tone, SR, normalize=False, use_agc=False)[50:].mean()
    assert raw_loud / raw_soft > 90  # linear without AGC
    assert loud / soft < 20  # a 40 dB range squeezed by the AGC


def test_mfcc_39_features_at_10_ms():
    rng = np.random.default_rng(0)
    w = 0.1 * rng.standard_normal(16000)
    m = mfcc(w, 16000)
    assert m.shape == (num_frames(16000, 16000), 39) == (99, 39) and np.isfinite(m).all()
    d = dct_matrix(13, 26)
    assert np.allclose(d @ d.T, np.eye(13), atol=1e-10)
    ramp = np.arange(10.0)[:, None]
    assert np.allclose(deltas(ramp)[2:-2], 1.0)
