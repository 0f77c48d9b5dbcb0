"""``tidigits``: the isolated-digit part of TIDIGITS (LDC93S10), 11 classes, 20 kHz.

Expected layout (the LDC CD-ROM copied as it is; folder names matched case-insensitively)::

    <data root>/tidigits/                       (or --data-dir pointing at this folder)
        train/{man,woman,boy,girl}/<speaker>/<digits><a|b>.wav
        test/{man,woman,boy,girl}/<speaker>/<digits><a|b>.wav      e.g. test/woman/ac/5b.wav

``<speaker>`` is the speaker's two-letter code. A file name is the digit string spoken (``1``-``9``, ``z`` =
zero, ``o`` = oh) followed by the production ``a`` or ``b``; the **isolated digits** are the single-digit
files (``1a.wav``, ``ob.wav``, ``za.wav``, ...), every other file (connected digit strings) is ignored. On
the CD the ``.wav`` files are NIST SPHERE (``NIST_1A`` header), possibly shorten-compressed: decompress with
``sph2pipe`` first (the error says so). RIFF WAV copies with the same names are read as well; ``.sph`` is
accepted as a suffix too. Any rate other than 20 kHz raises :class:`DatasetError`.

Classes: ``zero`` = 0, ``one``..``nine`` = 1..9, ``oh`` = 10 (``include_oh=false`` drops "oh": 10 classes,
as NRR-SNN uses). Split: ``split=corpus`` (default) is the corpus's own train/test folders (adult
and child speakers alike); ``split=random`` pools both and draws a seeded 70/30 train/test split (``seed``),
like NRR-SNN's (its exact permutation, from another RNG, is not reproduced).

Features: ``log-mel`` (default, ``channels`` x ``steps``), ``cochlea`` (Lyon's passive ear), or
``nrr-fbank``: NRR-SNN's input (docs/methods/nrr-snn.md): mel filterbank energies with 39 filters, nfft 4096, Hamming
window whose length is chosen per file so that exactly 39 frames at 50 % overlap cover the utterance,
linear (no log), each band L1-normalised over the frames; always 39 x 39 (``channels``/``steps`` ignored).
Cached keyed by the front-end parameters and the file list (paths, sizes and modification times).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import cached, corpus_dir

from .frontends import mel_filterbank
from .ti46 import compute_split, files_identity, find_dir, speech_features

SAMPLE_RATE = 20000
GROUPS = ("man", "woman", "boy", "girl")
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh"]
_ISOLATED = re.compile(r"^([1-9oz])[ab]$", re.IGNORECASE)
LAYOUT = ("tidigits/{train,test}/{man,woman,boy,girl}/<speaker>/<digit><a|b>.wav (isolated digits: 1a.wav, oa.wav, "
          "za.wav, ...)")


def nrr_fbank(
    wave: np.ndarray, sr: int, frames: int = 39, n_filters: int = 39, n_fft: int = 4096, preemph: float = 0.97
) -> np.ndarray:
    """NRR-SNN's (frames, n_filters) linear filterbank energies, each band L1-normalised over the frames."""
    wave = np.asarray(wave, dtype=np.float64)
    if preemph:
        wave = np.append(wave[:1], wave[1:] - preemph * wave[:-1])
    step = max(1, wave.size // (frames + 1))
    win = 2 * step
    need = (frames - 1) * step + win
    wave = np.pad(wave, (0, max(0, need - wave.size)))
    idx = np.arange(win)[None, :] + step * np.arange(frames)[:, None]
    seg = wave[idx] * np.hamming(win)[None, :]
    n_fft = max(n_fft, win)
    power = np.abs(np.fft.rfft(seg, n_fft, axis=1)) ** 2 / n_fft
    energy = power @ mel_filterbank(n_filters, n_fft, sr, 0.0, sr / 2).T
    energy = np.maximum(energy, np.finfo(np.float64).eps)
    return (energy / energy.sum(axis=0, keepdims=True)).astype(np.float32)


class TIDigits(Dataset):
    """TIDIGITS isolated digits (zero, one..nine, oh), adult and child speakers, 20 kHz."""

    name = "tidigits"
    description = "TIDIGITS isolated digits (LDC93S10): 11 classes (zero..nine, oh), 20 kHz, corpus train/test split"
    source = "https://catalog.ldc.upenn.edu/LDC93S10"
    licence = "LDC User Agreement for Non-Members (not redistributable)"
    params = (
        Param("features", "log-mel", "front-end", choices=("log-mel", "cochlea", "nrr-fbank")),
        Param("channels", 40, "mel bands or cochlea channels (nrr-fbank: always 39)", unit="channels"),
        Param("steps", 100, "time steps per utterance (nrr-fbank: always 39)", unit="steps"),
        Param("include_oh", True, "keep the 'oh' class (11 classes); false gives NRR-SNN's 10"),
        Param("split", "corpus", "corpus train/test folders, or a seeded random 70/30 split (NRR-SNN)",
              choices=("corpus", "random")),
        Param("seed", 42, "seed of split=random"),
    )

    @property
    def class_names(self):
        return CLASS_NAMES if self.hparams["include_oh"] else CLASS_NAMES[:10]

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def input_size(self):
        return 39 if self.hparams["features"] == "nrr-fbank" else self.hparams["channels"]

    @property
    def folder(self) -> Path:
        return corpus_dir(self.data_dir, "tidigits", "train")

    def _folder_files(self, split: str) -> tuple[list[Path], list[int]]:
        d = find_dir(self.folder, split)
        if d is None:
            raise DatasetError(
                f"TIDIGITS not found: expected {self.folder}/{LAYOUT.split('/', 1)[1]}. Pass --data-dir ROOT (with "
                f"ROOT/tidigits) or the tidigits folder itself, or set SNNKIT_DATA. TIDIGITS is LDC93S10 (licensed)."
            )
        files, labels = [], []
        for p in sorted(d.rglob("*")):
            if p.suffix.lower() not in (".wav", ".sph") or not p.is_file():
                continue
            m = _ISOLATED.match(p.stem)
            if not m:
                continue  # connected-digit strings
            ch = m[1].lower()
            y = 0 if ch == "z" else 10 if ch == "o" else int(ch)
            if y == 10 and not self.hparams["include_oh"]:
                continue
            files.append(p)
            labels.append(y)
        if not files:
            raise DatasetError(f"{d} holds no isolated-digit files; expected {LAYOUT}")
        return files, labels

    def files(self, split: str) -> tuple[list[Path], list[int]]:
        if split not in self.splits:
            raise DatasetError(f"tidigits has splits {self.splits}, not {split!r}")
        if self.hparams["split"] == "corpus":
            return self._folder_files(split)
        f1, y1 = self._folder_files("train")
        f2, y2 = self._folder_files("test")
        files, labels = f1 + f2, y1 + y2
        perm = np.random.default_rng(self.hparams["seed"]).permutation(len(files))
        cut = int(round(0.7 * len(files)))
        pick = np.sort(perm[:cut] if split == "train" else perm[cut:])
        return [files[i] for i in pick], [labels[i] for i in pick]

    def load(self, split: str) -> ArrayData:
        files, labels = self.files(split)
        hp = self.hparams
        key = {"features": hp["features"], "split": split, "files": files_identity(files, self.folder), "v": 1}
        if hp["features"] != "nrr-fbank":
            key.update(channels=hp["channels"], steps=hp["steps"])

        def feature(wave, sr):
            if hp["features"] == "nrr-fbank":
                return nrr_fbank(wave, sr)
            return speech_features(wave, sr, hp["features"], hp["channels"], hp["steps"])

        what = f"tidigits/{split}: {hp['features']}"
        data = cached("tidigits", key, lambda: compute_split(files, labels, SAMPLE_RATE, feature, what))
        return ArrayData(data["x"], data["y"])

    def identity(self):
        out = {"name": self.name, "params": dict(self.hparams)}
        for split in self.splits:
            files, _ = self.files(split)
            out[f"{split}_files"] = len(files)
            out[f"{split}_digest"] = files_identity(files, self.folder)
        return out


def register(register):
    register(TIDigits)
