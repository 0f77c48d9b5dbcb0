"""NRR-SNN's TIDigits front-end (spec §6.4): exactly `frames` windows at 50 % overlap, linear mel energies,
each band L1-normalised over the frames; and the FSDD option that uses it."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from snnkit_datasets.frontends import fbank_l1, mel_filterbank
from snnkit_datasets.fsdd import FSDD


def test_shape_bands_sum_to_one_and_linear_scale_free():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(7000)
    f = fbank_l1(wave, 8000)
    assert f.shape == (39, 39) and f.dtype == np.float32
    np.testing.assert_allclose(f.sum(axis=0), 1.0, rtol=1e-5)
    # linear energies, L1-normalised: scaling the waveform changes nothing (a log front-end would not be so)
    np.testing.assert_allclose(fbank_l1(3.0 * wave, 8000), f, rtol=1e-4)


def test_frames_cover_the_utterance_in_order():
    sr, n = 8000, 8000
    t = np.arange(n) / sr
    wave = np.where(t >= 0.5, np.sin(2 * np.pi * 1000 * t), 0.0)  # 1 kHz tone in the second half only
    f = fbank_l1(wave, sr, preemph=0.0)
    hop = n // 40  # 200 samples: frame i covers [200 i, 200 i + 400)
    fb = mel_filterbank(39, 4096, sr, 0.0, sr / 2)
    band = int(np.argmin(np.abs(np.argmax(fb, axis=1) * sr / 4096 - 1000)))  # the filter centred nearest 1 kHz
    # frames ending before the tone (i·200 + 400 <= 4000, i <= 18) hold none of it
    assert f[: 4000 // hop - 1, band].sum() < 1e-6 and f[20:, band].sum() > 0.9


def test_too_short_is_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        fbank_l1(np.ones(20), 8000)


def test_fsdd_fbank_option(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for d in range(10):
        sf.write(rec / f"{d}_ann_0.wav", 0.3 * rng.standard_normal(3000 + 100 * d), 8000, subtype="PCM_16")
    ds = FSDD(data_dir=str(tmp_path), features="fbank-l1", n_mels=39, steps=39)
    x = ds.load("test").x
    assert tuple(x.shape) == (10, 39, 39)
    np.testing.assert_allclose(x.sum(1).numpy(), 1.0, rtol=1e-4)
    assert ds.input_size == 39
    # the log-mel default is a different cache entry, not the fbank one
    assert FSDD(data_dir=str(tmp_path), n_mels=39, steps=39).load("test").x.min() < 0
