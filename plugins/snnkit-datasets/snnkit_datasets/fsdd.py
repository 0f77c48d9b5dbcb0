"""``fsdd``: the Free Spoken Digit Dataset (v1.0.10), 3,000 WAV recordings at 8 kHz, 10 digits, 6 speakers.

Layout: ``<data root>/fsdd/recordings/{digit}_{speaker}_{take}.wav`` (``--data-dir`` may also point at the
``fsdd`` folder itself). Standard split: takes 0-4 of each speaker and digit are the test set (300), takes
5-49 the training set (2,700). Features: log-mel, ``n_mels`` x ``steps`` (40 x 100 by default), cached on disk
keyed by the front-end parameters and the recordings' identity: the name, size and modification time
(``st_mtime_ns``) of every recording, and the sha256 of their contents (:func:`recordings_digest`, 27 MB read
once per process while the files are unchanged; it equals :data:`RECORDINGS_DIGEST` for the unmodified
v1.0.10). A recording rewritten in any way, even with the same size and mtime, computes the features again.

Speaker-independent split (``--set dataset.split=speaker``): the standard split shares all six speakers
between train and test, so it measures how well a model knows these six voices, not new ones. With
``split=speaker`` every recording of the ``test_speakers`` (default ``george,jackson``: a fixed pair, the first
two names in alphabetical order, so runs and seeds compare on the same people) is the test set (1,000) and
the other four speakers' recordings are the training set (2,000). Rotate ``test_speakers`` (e.g.
``lucas,nicolas`` and ``theo,yweweler``) for a three-fold speaker cross-validation. The held-out and
training speakers are recorded in the run manifest (``dataset.test_speakers``, ``dataset.train_speakers``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.dataset import track
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import cached, corpus_dir, files_identity

from .audio import read_audio
from .download import download, extract, sha256_file
from .frontends import fbank_l1, log_mel
from .ti46 import encode_bsa, speech_features

URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
#: sha256 over the sorted lines "<file name> <sha256 of file>\n" of all 3,000 recordings of v1.0.10
RECORDINGS_DIGEST = "dbd573d7cafe79c4b49f65718115e1304e24e067fa39eff18a660dc6cb9c360f"
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
SAMPLE_RATE = 8000


class FSDD(Dataset):
    """Free Spoken Digit Dataset: isolated English digits, 8 kHz, speaker-dependent split (takes 0-4 = test)."""

    name = "fsdd"
    description = "Free Spoken Digit Dataset v1.0.10: 3,000 WAVs, 10 digits, 6 speakers, 8 kHz (test = takes 0-4)"
    source = URL
    licence = "CC BY-SA 4.0"
    params = (
        Param("n_mels", 40, "mel channels", unit="channels"),
        Param("steps", 100, "time steps per utterance", unit="steps"),
        Param("features", "log-mel", "front-end: log-mel (log mel energies resampled to `steps`, "
              "standardised); cochlea: the Lyon passive-ear cochleagram (ST-RSBP's TI46 pipeline, ti46.py); "
              "fbank-l1: NRR-SNN's TIDigits input: exactly `steps` Hamming frames at 50 % overlap, "
              "`n_mels` linear mel energies, each band L1-normalised over the frames (use n_mels=39, steps=39)",
              choices=("log-mel", "cochlea", "fbank-l1")),
        Param("channels", 64, "cochlea channels (features=cochlea; log-mel uses n_mels); at 8 kHz at most 66 Lyon "
                              "channels fit below 4 kHz", unit="channels"),
        Param("encoding", "real", "real-valued features, or 0/1 spikes by Ben's Spiker Algorithm (ST-RSBP)",
              choices=("real", "bsa")),
        Param("download", False, "download the archive if the recordings are missing (needs internet)"),
        Param("split", "takes", "takes: FSDD's own split (takes 0-4 = test, every speaker in both); speaker: the "
              "test_speakers' recordings are the test set, the other speakers train", choices=("takes", "speaker")),
        Param("test_speakers", "george,jackson", "speakers held out for test when split=speaker (comma list)"),
        Param("val_speakers", "", "split=speaker only: speakers held out as a val split, so the best epoch is chosen "
              "on unheard voices too (comma list; empty: no val split, training carves one from train)"),
    )

    def __init__(self, data_dir: str | None = None, **params):
        super().__init__(data_dir, **params)
        if self.hparams["val_speakers"].strip():
            if self.hparams["split"] != "speaker":
                raise DatasetError("fsdd: val_speakers needs split=speaker (--set dataset.split=speaker)")
            self.splits = ("train", "val", "test")

    @property
    def num_classes(self):
        return 10

    @property
    def input_size(self):
        return self.hparams["channels"] if self.hparams["features"] == "cochlea" else self.hparams["n_mels"]

    @property
    def class_names(self):
        return [str(d) for d in range(10)]

    @property
    def folder(self) -> Path:
        return corpus_dir(self.data_dir, "fsdd", "recordings")

    def files(self) -> list[Path]:
        rec = self.folder / "recordings"
        if not rec.is_dir() and self.hparams["download"]:
            self.fetch()
        if not rec.is_dir():
            raise DatasetError(
                f"FSDD not found: expected {rec}/ holding {{digit}}_{{speaker}}_{{take}}.wav files. Pass --data-dir "
                f"ROOT (with ROOT/fsdd/recordings) or set SNNKIT_DATA; or add --set dataset.download=true to fetch it."
            )
        files = sorted(p for p in rec.iterdir() if p.suffix == ".wav")
        bad = [p.name for p in files if not _NAME.match(p.name)]
        if bad:
            raise DatasetError(
                f"unexpected file names in {rec}: {bad[:3]}; expected {{digit}}_{{speaker}}_{{take}}.wav"
            )
        if not files:
            raise DatasetError(f"{rec} holds no .wav files")
        return files

    def fetch(self) -> None:
        """Download v1.0.10 and keep only ``recordings/``, verified against :data:`RECORDINGS_DIGEST`."""
        root = self.folder
        archive = download(URL, root / ".download" / "fsdd-v1.0.10.tar.gz")
        tmp = root / ".download" / "x"
        extract(archive, tmp)
        found = next(tmp.glob("*/recordings"), None)
        if found is None:
            raise DatasetError(f"{archive} has no recordings/ folder")
        if recordings_digest(found) != RECORDINGS_DIGEST:
            raise DatasetError(f"the recordings in {archive} do not match FSDD v1.0.10 (checksum mismatch)")
        found.rename(root / "recordings")

    def _identity(self, files: list[Path]) -> str:
        """Names, sizes and mtimes of the recordings (cheap: one stat each)."""
        return files_identity(files)

    def _content_digest(self, files: list[Path]) -> str:
        """sha256 of the recordings' contents, as :func:`recordings_digest` (about 0.2 s for the 3,000 files),
        memoised in this process while no file's path, size, mtime or ctime changes (a write always moves
        ctime, which, unlike mtime, cannot be set back), so train, test and the manifest read them once."""
        memo = tuple((str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns) for p in files for st in [p.stat()])
        if memo not in _CONTENT_MEMO:
            _CONTENT_MEMO.clear()
            _CONTENT_MEMO[memo] = files_digest(files)
        return _CONTENT_MEMO[memo]

    def _cache_params(self, files: list[Path]) -> dict:
        """The cache key's parameters: front-end, the recordings' stat identity and their content digest."""
        key = {
            "n_mels": self.hparams["n_mels"], "steps": self.hparams["steps"],
            "files": self._identity(files), "sha256": self._content_digest(files), "v": 1,
        }
        if self.hparams["features"] != "log-mel":  # the log-mel key stays as it was, so existing caches still match
            key.update(features=self.hparams["features"], channels=self.hparams["channels"])
        return key

    def held_out_speakers(self, files: list[Path], which: str = "test") -> list[str]:
        """The ``test_speakers`` (or ``val_speakers``) of a speaker split, checked against the speakers the
        recordings have: known names, test and val disjoint, at least one speaker left for training."""
        present = sorted({_NAME.match(p.name).group(2) for p in files})
        sets = {
            w: sorted({s.strip() for s in self.hparams[f"{w}_speakers"].split(",") if s.strip()})
            for w in ("test", "val")
        }
        for w in ("test", "val"):
            unknown = [s for s in sets[w] if s not in present]
            if (w == "test" and not sets[w]) or unknown or len(set(sets["test"]) | set(sets["val"])) >= len(present):
                raise DatasetError(
                    f"fsdd: {w}_speakers {self.hparams[f'{w}_speakers']!r} must name one or more of the speakers in "
                    f"{self.folder / 'recordings'}: {', '.join(present)}, leaving at least one for training"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                )
        both = set(sets["test"]) & set(sets["val"])
        if both:
            raise DatasetError(f"fsdd: {', '.join(sorted(both))} cannot be both a test and a val speaker")
        return sets[which]

    def load(self, split: str) -> ArrayData:
        if split not in self.splits:
            raise DatasetError(f"fsdd has splits {self.splits}, not {split!r}")
        files = self.files()
        key = self._cache_params(files)
        data = cached("fsdd", key, lambda: self._compute(files))
        if self.hparams["split"] == "speaker":
            test, val = set(self.held_out_speakers(files)), set(self.held_out_speakers(files, "val"))
            # the cache holds the recordings in the order of ``files`` (sorted by name), so row i is files[i]
            speaker = [_NAME.match(p.name).group(2) for p in files]
            mask = torch.tensor([
                (s in test) if split == "test" else (s in val) if split == "val" else (s not in test and s not in val)
                for s in speaker
            ])
        else:
            mask = data["take"] < 5 if split == "test" else data["take"] >= 5
        x = data["x"][mask]
        if self.hparams["encoding"] == "bsa":
            x = encode_bsa(x)  # per utterance max-normalised, as for TI46
        return ArrayData(x, data["y"][mask])

    def _compute(self, files: list[Path]) -> dict[str, torch.Tensor]:
        feats, labels, takes = [], [], []
        hp = self.hparams
        for p in track(files, len(files), f"fsdd: {hp['features']} features"):
            digit, _, take = _NAME.match(p.name).groups()
            wave, sr = read_audio(p, SAMPLE_RATE)
            if hp["features"] == "cochlea":
                feats.append(speech_features(wave, sr, "cochlea", hp["channels"], hp["steps"]))
            elif hp["features"] == "fbank-l1":
                feats.append(fbank_l1(wave, sr, n_filters=hp["n_mels"], frames=hp["steps"]))
            else:
                feats.append(log_mel(wave, sr, n_mels=hp["n_mels"], steps=hp["steps"]))
            labels.append(int(digit))
            takes.append(int(take))
        return {"x": torch.from_numpy(np.stack(feats)), "y": torch.tensor(labels), "take": torch.tensor(takes)}

    def identity(self):
        files = self.files()
        digest = self._content_digest(files)
        out = {
            "name": self.name, "params": dict(self.hparams), "files": len(files), "files_digest": self._identity(files),
            "sha256": digest, "v1.0.10": digest == RECORDINGS_DIGEST,
        }
        if self.hparams["split"] == "speaker":
            held = self.held_out_speakers(files)
            val = self.held_out_speakers(files, "val")
            out["test_speakers"] = held
            out["val_speakers"] = val
            out["train_speakers"] = sorted({_NAME.match(p.name).group(2) for p in files} - set(held) - set(val))
        return out


#: the recordings' (path, size, mtime, ctime) -> their content digest; the last one computed in this process
_CONTENT_MEMO: dict[tuple, str] = {}


def files_digest(files: list[Path]) -> str:
    """sha256 over the lines "<file name> <sha256 of file>\n" of ``files`` (sorted by name)."""
    h = hashlib.sha256()
    for p in sorted(files, key=lambda q: q.name):
        h.update(f"{p.name} {sha256_file(p)}\n".encode())
    return h.hexdigest()


def recordings_digest(folder: Path) -> str:
    return files_digest([p for p in folder.iterdir() if p.suffix == ".wav"])


def register(register):
    register(FSDD)
