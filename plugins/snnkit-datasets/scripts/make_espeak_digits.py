#!/usr/bin/env python
"""Generate ``snnkit_datasets/data/espeak_digits.npz``: spoken digits synthesised with eSpeak NG.

Why synthetic: ``snnkit train`` needs a speech dataset that works offline, out of the box, and that snnkit may
redistribute. eSpeak NG runs locally and its output audio is ours to license, so the audio is made here and
shipped inside the package (about 1.8 MB).

What it makes: the ten English words "zero".."nine" (class = digit) spoken by ``len(VOICES)`` voice identities,
``--takes`` takes per voice and digit. A voice identity is an eSpeak NG accent plus a voice variant (timbre)
plus a base speaking rate and pitch drawn once for that voice. Every take draws its own rate and pitch around
the voice's base, a loudness, a leading and trailing silence, and background noise (white or pink) at an SNR
between 15 and 30 dB. The voices in ``TEST_VOICES`` make the test split and never occur in training, so the
test accuracy measures generalisation to unseen voices.

Storage: 8 kHz mono, 8-bit linear codes in ``int8`` with one float ``scale`` per utterance, all utterances
concatenated, ``offsets`` marking where each starts. Decoding: ``wave_i = audio[offsets[i]:offsets[i+1]] * scale[i]``.
The quantisation step is tied to the added noise (see :func:`quantize` and :func:`coarsen`), which keeps the
file small.

Determinism: every random draw comes from a generator seeded by ``(--seed, voice, digit, take)``, so the audio
(and its ``audio_sha256``) is the same on every run with the same eSpeak NG and SoX versions, whatever the
order of work. The zip container itself records file times, so the .npz bytes differ between runs.

Run from the repository root (needs ``espeak-ng`` and ``sox`` on PATH)::

    python plugins/snnkit-datasets/scripts/make_espeak_digits.py
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SAMPLE_RATE = 8000
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "snnkit_datasets" / "data" / "espeak_digits.npz"

#: (eSpeak NG voice, variant) pairs; each pair is one voice identity. Every variant is used once, so a test
#: voice's timbre never appears in training; the accents cycle so each accent has train and test voices.
VOICES: tuple[tuple[str, str], ...] = (
    # training voices
    ("en-gb", "m1"), ("en-us", "m2"), ("en-gb-scotland", "m4"), ("en-gb-x-rp", "m5"),
    ("en-gb-x-gbclan", "m6"), ("en-gb-x-gbcwmd", "m8"), ("en-029", "f1"), ("en-us-nyc", "f3"),
    ("en-gb", "f4"), ("en-us", "f5"), ("en-gb-scotland", "klatt"), ("en-gb-x-rp", "klatt2"),
    ("en-gb-x-gbclan", "klatt3"), ("en-gb-x-gbcwmd", "klatt5"), ("en-029", "Alicia"), ("en-us-nyc", "Andrea"),
    ("en-gb", "linda"), ("en-us", "steph"), ("en-gb-scotland", "aunty"), ("en-gb-x-rp", "adam"),
    ("en-gb-x-gbclan", "david"), ("en-gb-x-gbcwmd", "john"), ("en-029", "max"), ("en-us-nyc", "robert"),
    ("en-gb", "edward"), ("en-us", "anika"), ("en-gb-scotland", "grandpa"), ("en-gb-x-rp", "Annie"),
    # test voices: one per accent; male, female and Klatt-synthesiser timbres
    ("en-gb", "m3"), ("en-us", "f2"), ("en-gb-scotland", "m7"), ("en-gb-x-rp", "klatt4"),
    ("en-gb-x-gbclan", "belinda"), ("en-gb-x-gbcwmd", "paul"), ("en-029", "grandma"), ("en-us-nyc", "Andy"),
)
TEST_VOICES = frozenset(range(28, 36))


def voice_name(i: int) -> str:
    lang, variant = VOICES[i]
    return f"{lang}+{variant}"


def voice_base(seed: int, voice: int) -> tuple[float, float]:
    """The voice's own base rate (words/min) and pitch (0-99): drawn once, so takes of one voice share them."""
    rng = np.random.default_rng([seed, voice, 1_000_003])
    return float(rng.uniform(130, 200)), float(rng.uniform(25, 75))


def synthesize(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """eSpeak NG at 22,050 Hz, resampled by SoX to 8 kHz mono float32 (SoX's default high-quality ``rate``)."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    raw = subprocess.run(
        ["sox", "-V1", "-t", "wav", "-", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1",
         "-r", str(SAMPLE_RATE), "-"],
        input=wav, check=True, capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)


def trim(x: np.ndarray, frame: int = 80, rel_db: float = -40.0) -> np.ndarray:
    """Drop eSpeak's own leading/trailing silence: frames whose RMS is 40 dB below the loudest frame."""
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (rel_db / 20))
    return x[loud[0] * frame : (loud[-1] + 1) * frame]


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def quantize(x: np.ndarray, noise_rms: float) -> tuple[np.ndarray, float]:
    """x -> (int8 codes, scale) with ``x ~= codes * scale``.

    The step is tied to the noise we added: 1.5 x its RMS, so the rounding error (step / sqrt(12), about 0.43 x
    the noise RMS) raises the noise floor by under 1 dB, and the codes of the noise-only parts stay small, which
    is what lets deflate pack this into ~3.9 bits a sample (8-bit mu-law of the same audio needs ~7.3). Loud,
    clean takes use a finer step (peak / 127) so the peak still fits in int8.
    """
    step = max(1.5 * noise_rms, float(np.max(np.abs(x))) / 127)
    return coarsen(np.clip(np.round(x / step), -127, 127).astype(np.int8), step)


#: the codes are then rounded to every COARSEN-th level (step 4.5 x the noise RMS): the rounding error grows to
#: about 1.3 x the noise RMS (the effective SNR drops by about 4 dB, to roughly 11-26 dB), and the file from
#: 3.3 MB to 1.8 MB, under the 2 MB limit for files in the repository. The first release shipped COARSEN = 1;
#: the current file is that one passed through :func:`coarsen` (the same codes this script now makes; a scale may
#: differ in its last float32 bit).
COARSEN = 3


def coarsen(codes: np.ndarray, scale: float, factor: int = COARSEN) -> tuple[np.ndarray, float]:
    """Round int8 ``codes`` to multiples of ``factor`` levels: ``codes * scale ~= new_codes * new_scale``."""
    return np.round(codes.astype(np.float64) / factor).astype(np.int8), float(scale) * factor


def make_utterance(seed: int, voice: int, digit: int, take: int) -> tuple[np.ndarray, dict]:
    """One take: synthesis with jittered rate/pitch, trimmed, padded with silence, noise added, level set, quantised."""
    base_speed, base_pitch = voice_base(seed, voice)
    rng = np.random.default_rng([seed, voice, digit, take])
    speed = int(round(np.clip(base_speed * rng.uniform(0.85, 1.15), 80, 320)))
    pitch = int(round(np.clip(base_pitch + rng.uniform(-10, 10), 0, 99)))
    speech = trim(synthesize(WORDS[digit], voice_name(voice), speed, pitch))
    lead, tail = (int(rng.uniform(0.03, 0.15) * SAMPLE_RATE) for _ in range(2))
    x = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    snr_db = rng.uniform(15, 30)
    pink = rng.random() < 0.5
    noise = pink_noise(len(x), rng) if pink else rng.standard_normal(len(x))
    speech_rms = np.sqrt(np.mean(speech**2))
    noise_rms = speech_rms * 10 ** (-snr_db / 20)
    x = x + noise * noise_rms
    peak_db = rng.uniform(-20, -1)  # loudness: the peak lands between -20 and -1 dBFS
    gain = 10 ** (peak_db / 20) / np.max(np.abs(x))
    codes, scale = quantize(x * gain, noise_rms * gain)
    meta = {"speed": speed, "pitch": pitch, "snr_db": snr_db, "pink": pink, "scale": scale}
    return codes, meta


def tool_version(tool: str) -> str:
    """``eSpeak NG text-to-speech: 1.51`` / ``SoX v14.4.2``: recorded in the file, since output depends on them."""
    out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    return " ".join(out.split("Data at:")[0].replace(f"{tool}:", "").split())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--takes", type=int, default=4, help="takes per voice and digit")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--workers", type=int, default=4, help="parallel synthesis processes")
    args = ap.parse_args(argv)
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found on PATH; install it (e.g. apt-get install espeak-ng sox)")

    jobs = [(v, d, t) for v in range(len(VOICES)) for d in range(10) for t in range(args.takes)]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:  # threads: the work happens in the child processes
        results = list(pool.map(lambda j: make_utterance(args.seed, *j), jobs))

    codes = [r[0] for r in results]
    audio = np.concatenate(codes)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in codes])]).astype(np.int64)
    voice = np.array([v for v, _, _ in jobs], dtype=np.int16)
    labels = np.array([d for _, d, _ in jobs], dtype=np.int8)
    split = np.array([v in TEST_VOICES for v in voice], dtype=np.int8)
    audio_sha256 = hashlib.sha256(audio.tobytes()).hexdigest()
    versions = [tool_version(t) for t in ("espeak-ng", "sox")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        audio=audio,
        offsets=offsets,
        labels=labels,
        voice=voice,
        voice_names=np.array([voice_name(i) for i in range(len(VOICES))]),
        split=split,
        take=np.array([t for _, _, t in jobs], dtype=np.int8),
        speed=np.array([r[1]["speed"] for r in results], dtype=np.int16),
        pitch=np.array([r[1]["pitch"] for r in results], dtype=np.int8),
        snr_db=np.array([r[1]["snr_db"] for r in results], dtype=np.float32),
        pink=np.array([r[1]["pink"] for r in results], dtype=bool),
        scale=np.array([r[1]["scale"] for r in results], dtype=np.float32),
        sample_rate=np.int32(SAMPLE_RATE),
        seed=np.int64(args.seed),
        audio_sha256=np.str_(audio_sha256),
        generator=np.str_(f"make_espeak_digits.py --takes {args.takes} --seed {args.seed}; {'; '.join(versions)}"),
    )
    took = time.perf_counter() - start
    dur = len(audio) / SAMPLE_RATE
    print(
        f"{len(jobs)} utterances ({int((split == 0).sum())} train / {int(split.sum())} test), "
        f"{len(VOICES)} voices, {dur:.0f} s of audio (mean {dur / len(jobs):.2f} s); "
        f"{args.out} {args.out.stat().st_size / 1e6:.2f} MB; audio sha256 {audio_sha256}; {took:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
