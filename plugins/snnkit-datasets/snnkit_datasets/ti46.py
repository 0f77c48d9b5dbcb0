"""``ti46-alpha`` and ``ti46-digits``: the TI 46-word speaker-dependent isolated word corpus (LDC93S9).

Expected layout (the LDC CD-ROM copied as it is; names are matched case-insensitively)::

    <data root>/ti46/                         (or --data-dir pointing at this folder)
        ti20/train/<speaker>/<word><speaker>set<token>.sph     e.g. ti20/train/f1/00f1set0.sph
        ti20/test/<speaker>/<word><speaker>s<session>t<token>.sph   e.g. ti20/test/m3/09m3s4t1.sph
        ti_alpha/train/<speaker>/...          e.g. ti_alpha/train/f1/0af1set0.sph  (assumed, see below)
        ti_alpha/test/<speaker>/...

Speakers are ``f1``-``f8`` and ``m1``-``m8``. A file name starts with a 2-character word code: in ``ti20``
``00``-``09`` are the digits zero..nine (``10``-``19`` the ten command words, ignored here); in ``ti_alpha``
the code holds the letter (the one alphabetic character of the code, e.g. ``0a``; public TI46 scripts take
``name[1]`` as the letter, which is what we assume). Training files are the enrolment session
(``set0``-``set9``: 10 tokens per word and speaker), test files sessions 1-8 with 2 tokens each. The split
is the corpus's own ``train``/``test`` folders: 4,142 / 6,628 utterances for the alphabet and 1,594 / 2,542
for the digits (a few tokens are missing from the CD), as in ScSr-SNN and ST-RSBP.

Audio: NIST SPHERE, 12.5 kHz, 16-bit; any other rate raises :class:`DatasetError`. Shorten-compressed
SPHERE must first be decompressed with ``sph2pipe`` (the error says so); files converted to ``.wav`` with
the same names are accepted too.

Features (``features``): ``cochlea`` (default) is Lyon's passive ear (:mod:`snnkit_datasets.cochlea`),
``channels`` = 78 channels x ``steps`` = 100 frames, non-negative, normalised to max 1 per utterance: the
papers' "78 Lyon-ear channels, real-valued currents, 100 samples per channel"; ``log-mel`` uses
:func:`frontends.log_mel` with ``channels`` mel bands. ``encoding = bsa`` turns the features into 0/1 spike
trains with Ben's Spiker Algorithm (:func:`encoders.bsa_encode`, ST-RSBP's input), applied after the cached
features. Features are cached keyed by the front-end parameters and the split's file list (relative paths,
sizes and modification times, :func:`files_identity`): a file rewritten even with the same size is recomputed.

Speaker-independent split (``split=speaker``): TI46's own folders hold the same 16 speakers in train and
test. With ``split=speaker`` every utterance (from both folders) of the ``test_speakers`` (default ``f1,m1``:
one woman, one man, fixed so runs compare on the same people) is the test set and the other 14 speakers'
utterances are the training set. The features are the same cache entries as the corpus split's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.dataset import track
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import cached, corpus_dir
from snnkit_datasets.cache import files_identity as _stat_identity

from .cochlea import lyon_cochleagram
from .encoders import bsa_encode
from .frontends import log_mel
from .sphere import read_any

SAMPLE_RATE = 12500
SPEAKERS = tuple(f"f{i}" for i in range(1, 9)) + tuple(f"m{i}" for i in range(1, 9))
AUDIO_SUFFIXES = (".sph", ".wav")
_NAME = re.compile(r"^(?P<word>[0-9a-z_]{2})(?P<spk>[fm]\d+)s\w+$", re.IGNORECASE)  # set0, s1t0, ...


def files_identity(files: list[Path], root: Path) -> str:
    """sha256 over "<relative path> <size> <st_mtime_ns>" lines: changes when files are added, removed or
    rewritten (even with the same size). Stat only, no reading: cheap on a corpus of thousands of files."""
    return _stat_identity(files, root)


def speech_features(wave: np.ndarray, sr: int, features: str, channels: int, steps: int) -> np.ndarray:
    if features == "cochlea":
        return lyon_cochleagram(wave, sr, channels=channels, steps=steps)
    return log_mel(wave, sr, n_mels=channels, steps=steps)


def compute_split(files: list[Path], labels: list[int], expected_sr: int, feature: Callable,
                  description: str = "features") -> dict[str, torch.Tensor]:
    """``feature(wave, sr)`` of every file stacked as x, with labels y; the loop reports to :func:`track`."""
    feats = []
    for p in track(files, len(files), description):
        wave, sr = read_any(p, expected_sr)
        feats.append(feature(wave, sr))
    return {"x": torch.from_numpy(np.stack(feats)).float(), "y": torch.tensor(labels, dtype=torch.int64)}


def find_dir(parent: Path, name: str) -> Path | None:
    """``parent/name`` matched case-insensitively (CD copies vary between upper and lower case)."""
    if not parent.is_dir():
        return None
    exact = parent / name
    if exact.is_dir():
        return exact
    for p in parent.iterdir():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


class _TI46(Dataset):
    source = "https://catalog.ldc.upenn.edu/LDC93S9"
    licence = "LDC User Agreement for Non-Members (not redistributable)"
    subset = ""  # ti20 or ti_alpha
    params = (
        Param("features", "cochlea", "front-end: Lyon passive ear or log-mel", choices=("cochlea", "log-mel")),
        Param("channels", 78, "cochlea channels or mel bands", unit="channels"),
        Param("steps", 100, "time steps per utterance", unit="steps"),
        Param("encoding", "real", "real-valued features, or 0/1 spikes by Ben's Spiker Algorithm (ST-RSBP)",
              choices=("real", "bsa")),
        Param("split", "corpus", "corpus: the corpus's train/test folders (the same speakers in both); speaker: every "
              "utterance of test_speakers is test, the other speakers' train", choices=("corpus", "speaker")),
        Param("test_speakers", "f1,m1", "speakers held out for test when split=speaker (comma list of f1..f8, m1..m8)"),
    )

    @property
    def input_size(self):
        return self.hparams["channels"]

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def folder(self) -> Path:
        return corpus_dir(self.data_dir, "ti46", self.subset)

    def label(self, word: str) -> int | None:
        raise NotImplementedError

    def files(self, split: str) -> tuple[list[Path], list[int]]:
        if split not in self.splits:
            raise DatasetError(f"{self.name} has splits {self.splits}, not {split!r}")
        sub = find_dir(self.folder, self.subset)
        d = find_dir(sub, split) if sub else None
        layout = (
            f"{self.folder}/{self.subset}/{{train,test}}/"
            f"<speaker f1..f8, m1..m8>/<word><speaker>s<session>t<token>.sph "
            f"(e.g. {self.subset}/train/f1/{'00' if self.subset == 'ti20' else '0a'}f1set0.sph)"
        )
        if d is None:
            raise DatasetError(
                f"TI46 ({self.name}) not found: expected {layout}. Pass --data-dir ROOT (with ROOT/ti46) or the ti46 "
                f"folder itself, or set SNNKIT_DATA. TI46 is LDC93S9 (licensed; not downloadable)."
            )
        files, labels = [], []
        for p in sorted(d.rglob("*")):
            if p.suffix.lower() not in AUDIO_SUFFIXES or not p.is_file():
                continue
            m = _NAME.match(p.stem)
            if not m:
                raise DatasetError(f"unexpected file name {p}; expected {layout}")
            y = self.label(m["word"].lower())
            if y is not None:
                files.append(p)
                labels.append(y)
        if not files:
            raise DatasetError(f"{d} holds no {self.name} utterances; expected {layout}")
        return files, labels

    def held_out_speakers(self) -> list[str]:
        """The ``test_speakers`` of a speaker split, checked against the speakers the corpus folders hold."""
        present = sorted({_NAME.match(p.stem)["spk"].lower() for s in ("train", "test") for p in self.files(s)[0]})
        want = sorted({s.strip().lower() for s in self.hparams["test_speakers"].split(",") if s.strip()})
        unknown = [s for s in want if s not in present]
        if not want or unknown or len(want) >= len(present):
            raise DatasetError(
                f"{self.name}: test_speakers {self.hparams['test_speakers']!r} must name one or more (not all) of the "
                f"speakers present: {', '.join(present)}" + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        return want

    def load(self, split: str) -> ArrayData:
        if self.hparams["split"] == "speaker":
            if split not in self.splits:
                raise DatasetError(f"{self.name} has splits {self.splits}, not {split!r}")
            held = set(self.held_out_speakers())
            parts = [(self._load_folder(s), self.files(s)[0]) for s in ("train", "test")]
            x = torch.cat([d.x for d, _ in parts])
            y = torch.cat([d.y for d, _ in parts])
            in_test = torch.tensor([_NAME.match(p.stem)["spk"].lower() in held for _, files in parts for p in files])
            mask = in_test if split == "test" else ~in_test
            return ArrayData(x[mask], y[mask])
        return self._load_folder(split)

    def _load_folder(self, split: str) -> ArrayData:
        """The corpus's own ``split`` folder, in the order of :meth:`files`."""
        files, labels = self.files(split)
        hp = self.hparams
        key = {
            "features": hp["features"], "channels": hp["channels"], "steps": hp["steps"], "split": split,
            "files": files_identity(files, self.folder), "v": 1,
        }
        feature = lambda w, sr: speech_features(w, sr, hp["features"], hp["channels"], hp["steps"])  # noqa: E731
        what = f"{self.name}/{split}: {hp['features']}"
        data = cached(self.name, key, lambda: compute_split(files, labels, SAMPLE_RATE, feature, what))
        x = data["x"]
        if hp["encoding"] == "bsa":
            x = encode_bsa(x)
        return ArrayData(x, data["y"])

    def identity(self):
        out = {"name": self.name, "params": dict(self.hparams)}
        for split in self.splits:
            files, _ = self.files(split)
            out[f"{split}_files"] = len(files)
            out[f"{split}_digest"] = files_identity(files, self.folder)
        if self.hparams["split"] == "speaker":
            held = self.held_out_speakers()
            out["test_speakers"] = held
            out["train_speakers"] = sorted(
                {_NAME.match(p.stem)["spk"].lower() for s in ("train", "test") for p in self.files(s)[0]} - set(held))
        return out


def encode_bsa(x: torch.Tensor) -> torch.Tensor:
    """BSA spikes of every example of (N, T, C) features in [0, 1] (per-utterance max-normalised first)."""
    arr = x.numpy()
    out = np.empty_like(arr)
    for i, f in enumerate(arr):
        peak = f.max()
        out[i] = bsa_encode(f / peak if peak > 0 else f)
    return torch.from_numpy(out)


class TI46Alpha(_TI46):
    """TI46 spoken English alphabet (26 letters), 16 speakers, speaker-dependent train/test folders."""

    name = "ti46-alpha"
    description = "TI46 alphabet (LDC93S9): 26 letters, 16 speakers, 12.5 kHz, 78 Lyon-ear channels x 100 steps"
    subset = "ti_alpha"

    @property
    def class_names(self):
        return [chr(ord("a") + i) for i in range(26)]

    def label(self, word):
        letters = [c for c in word if c.isalpha()]
        return ord(letters[0]) - ord("a") if len(letters) == 1 else None


class TI46Digits(_TI46):
    """TI46 digits zero..nine (the ti20 vocabulary's codes 00-09), 16 speakers, corpus train/test folders."""

    name = "ti46-digits"
    description = "TI46 digits (LDC93S9, ti20 codes 00-09): 10 classes, 16 speakers, 12.5 kHz, 78 Lyon-ear channels"
    subset = "ti20"

    @property
    def class_names(self):
        return ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

    def label(self, word):
        return int(word) if word.isdigit() and int(word) < 10 else None


def register(register):
    register(TI46Alpha)
    register(TI46Digits)
