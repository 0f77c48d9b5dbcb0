"""``gsc``: Google Speech Commands (v0.01 or v0.02), one-second words at 16 kHz.

Layout (as the official archives unpack): ``<data root>/gsc/`` (or ``speech_commands_v0.01/`` /
``speech_commands_v0.02/``; ``--data-dir`` may be the folder itself) holding ``<word>/<speaker>_nohash_<n>.wav``,
``validation_list.txt``, ``testing_list.txt`` and ``_background_noise_/*.wav``.

Splits (official, by list): a clip listed in ``validation_list.txt`` is ``val``, one in ``testing_list.txt``
is ``test``, every other clip is ``train``.

Classes (``classes``): ``12`` (default; the ASRC / TC-LIF task): ``unknown`` = 0 (every word that is not a
command), ``silence`` = 1, then ``yes no up down left right on off stop go`` = 2..11. Silence examples are
``silence_clips`` one-second crops (evenly spaced, the first at 0 s) of each ``_background_noise_`` file, in
the training split only (ASRC: 1 = the first second). ``all``: one class per word folder present, sorted
(30 for v0.01, 35 for v0.02), no silence.

Features (ASRC's pipeline): magnitude STFT (Hann, n_fft 480, hop 160, centred with zero padding), 40
triangular mel bands over 40-4000 Hz, dB relative to the utterance's maximum (floor -80 dB), padded with 0
or cut to 101 frames, z-scored per utterance: x (N, 101, 40). Clips must be 16 kHz. Features of all splits
are cached together, keyed by the parameters and the name, size, modification time (``st_mtime_ns``) and split
of every file, so a clip rewritten even with the same size computes the features again. ``storage=disk``
instead writes each split's features as float16 into a memory-mapped ``.npy`` (clip by clip, the same rows
in the same order), read per batch; ``auto`` (default) does so only for a split over 4 GiB as float32.

Download (opt-in, ``download=true``): when no folder holds the corpus, the official archive of
``download_version`` (v0.01 by default, as ASRC) is fetched into ``<data root>/.download/``, resumably, verified
against :data:`ARCHIVE_SHA256`, unpacked with the path-traversal filter into a temporary folder and renamed to
``<data root>/speech_commands_<version>/``, so the corpus folder appears whole or not at all. The archive is
deleted afterwards.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.dataset import track
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import cached, data_root
from snnkit_datasets.diskarray import cached_array, store_counts, use_disk

from .audio import read_audio
from .download import download, extract
from .frontends import mel_filterbank

SAMPLE_RATE = 16000
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
NOISE = "_background_noise_"
FOLDERS = ("gsc", "speech_commands_v0.02", "speech_commands_v0.01")
_NAME = re.compile(r"^[0-9a-fA-F]+_nohash_\d+\.wav$")
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}

N_FFT, HOP, N_MELS, FMIN, FMAX, FRAMES, TOP_DB = 480, 160, 40, 40.0, 4000.0, 101, 80.0

ARCHIVE_URL = "http://download.tensorflow.org/data/speech_commands_{version}.tar.gz"
#: sha256 of the official archives, from pytorch/audio torchaudio/datasets/speechcommands.py (_CHECKSUMS);
#: v0.02's is also in tensorflow/datasets tensorflow_datasets/url_checksums/speech_commands.txt (2,428,923,189 bytes)
ARCHIVE_SHA256 = {
    "v0.01": "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    "v0.02": "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
}
#: parameters that choose what is fetched, not what is computed: left out of the feature cache's key
_NOT_IN_KEY = ("download", "download_version", "storage")


def gsc_features(wave: np.ndarray, sr: int = SAMPLE_RATE, frames: int = FRAMES) -> np.ndarray:
    """(frames, 40) float32 features of one clip (see the module docstring)."""
    wave = np.asarray(wave, dtype=np.float64)
    pad = N_FFT // 2
    w = np.pad(wave, (pad, pad))
    n = 1 + (w.size - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann, as librosa/torch
    mag = np.abs(np.fft.rfft(w[idx] * window[None, :], axis=1))
    mel = mag @ _filterbank(sr).T
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db - db.max(), -TOP_DB)
    return pad_frames(db, frames, normalize=True)


def pad_frames(feat: np.ndarray, frames: int, normalize: bool = True) -> np.ndarray:
    """Cut (frames, C) features to ``frames`` rows or pad with zeros at the end; then z-score (std 0: centre only)."""
    if feat.shape[0] >= frames:
        feat = feat[:frames]
    else:
        feat = np.concatenate([feat, np.zeros((frames - feat.shape[0], feat.shape[1]))])
    if normalize:
        feat = feat - feat.mean()
        sd = feat.std()
        if sd > 0:
            feat = feat / sd
    return feat.astype(np.float32)


_FB: dict[int, np.ndarray] = {}


def _filterbank(sr: int) -> np.ndarray:
    if sr not in _FB:
        _FB[sr] = mel_filterbank(N_MELS, N_FFT, sr, FMIN, FMAX)
    return _FB[sr]


class GSC(Dataset):
    """Google Speech Commands keyword spotting: 12-class (10 commands + unknown + silence) or all words."""

    name = "gsc"
    description = "Google Speech Commands v0.01/v0.02: 1-s words at 16 kHz, 12 classes or all words, 101 x 40 log-mel"
    source = "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz (v0.02: speech_commands_v0.02.tar.gz)"
    licence = "CC BY 4.0"
    splits = ("train", "val", "test")
    params = (
        Param("classes", "12", "12: 10 commands + unknown + silence (ASRC/TC-LIF); all: one class per word",
              choices=("12", "all")),
        Param("silence_clips", 1, "classes=12: one-second crops taken from each background-noise file (train only)",
              unit="clips"),
        Param(
            "download",
            False,
            "download and unpack the official archive if no folder holds the corpus (needs internet; sha256-verified)",
        ),
        Param("download_version", "v0.01",
              "the archive download=true fetches, into <data root>/speech_commands_<version>/",
              choices=("v0.01", "v0.02")),
        Param("storage", "auto", "memory: float32 in RAM; disk: float16 features memory-mapped from the feature cache "
              "(one file per split), read per batch; auto: disk when the split is over 4 GiB as float32",
              choices=("auto", "memory", "disk")),
    )

    def __init__(self, data_dir: str | None = None, **params):
        super().__init__(data_dir, **params)
        if self.hparams["silence_clips"] < 0:
            raise DatasetError(f"gsc: silence_clips must be >= 0, got {self.hparams['silence_clips']}")

    # ----------------------------------------------------------------------- layout
    def _find(self) -> tuple[Path | None, list[Path]]:
        cands = [Path(self.data_dir).expanduser()] if self.data_dir else []
        cands += [data_root(self.data_dir) / f for f in FOLDERS]
        return next((c for c in cands if (c / "testing_list.txt").is_file()), None), cands

    @property
    def folder(self) -> Path:
        found, cands = self._find()
        if found is None and self.hparams["download"]:
            found = self.fetch()
        if found is not None:
            return found
        raise DatasetError(
            f"Google Speech Commands not found: looked in {', '.join(map(str, cands))}; expected a folder holding "
            f"<word>/<speaker>_nohash_<n>.wav, validation_list.txt, testing_list.txt and {NOISE}/. Pass --data-dir "
            f"ROOT (with ROOT/gsc/) or the unpacked folder itself, or set SNNKIT_DATA; or add --set "
            f"dataset.download=true to fetch it (--set dataset.download_version=v0.02 for v0.02)."
        )

    def fetch(self) -> Path:
        """Download the ``download_version`` archive, verify its sha256 (:data:`ARCHIVE_SHA256`), unpack it and
        rename it to ``<data root>/speech_commands_<version>/``; then delete the archive."""
        version = self.hparams["download_version"]
        root = data_root(self.data_dir)
        target = root / f"speech_commands_{version}"
        if target.exists() and any(target.iterdir()):
            raise DatasetError(
                f"{target} exists but holds no testing_list.txt: a partial copy? Remove it (or complete it by hand) "
                f"and run again with --set dataset.download=true."
            )
        staging = root / ".download"
        name = f"speech_commands_{version}.tar.gz"
        archive = download(ARCHIVE_URL.format(version=version), staging / name, sha256=ARCHIVE_SHA256[version])
        tmp = staging / f"speech_commands_{version}.x"
        shutil.rmtree(tmp, ignore_errors=True)
        extract(archive, tmp)
        lists = sorted(tmp.rglob("testing_list.txt"), key=lambda q: len(q.parts))
        if not lists:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DatasetError(f"{archive} holds no testing_list.txt; it is not a Speech Commands archive")
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.replace(lists[0].parent, target)
        shutil.rmtree(tmp, ignore_errors=True)
        archive.unlink()
        try:
            staging.rmdir()
        except OSError:  # not empty: another download is under way or was interrupted
            pass
        return target

    def words(self) -> list[str]:
        root = self.folder
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))

    @property
    def class_names(self) -> list[str]:
        if self.hparams["classes"] == "12":
            return ["unknown", "silence", *COMMANDS]
        return self.words()

    @property
    def num_classes(self):
        return 12 if self.hparams["classes"] == "12" else len(self.words())

    @property
    def input_size(self):
        return N_MELS

    def _list(self, name: str) -> set[str]:
        path = self.folder / name
        if not path.is_file():
            raise DatasetError(
                f"{path} is missing: GSC's official split needs validation_list.txt and testing_list.txt"
            )
        return {line.strip() for line in path.read_text().splitlines() if line.strip()}

    def clips(self) -> list[tuple[str, str]]:
        """``(relative path, split)`` of every word clip, sorted."""
        root = self.folder
        val, test = self._list("validation_list.txt"), self._list("testing_list.txt")
        out = []
        for word in self.words():
            for p in sorted((root / word).iterdir()):
                if p.suffix.lower() != ".wav":
                    continue
                if not _NAME.match(p.name):
                    raise DatasetError(f"unexpected file name {p}; GSC clips are named "
                                       f"<word>/<speaker hash>_nohash_<n>.wav")
                rel = f"{word}/{p.name}"
                out.append((rel, "val" if rel in val else "test" if rel in test else "train"))
        if not out:
            raise DatasetError(f"{root} holds no <word>/*.wav clips")
        return out

    def noise_files(self) -> list[Path]:
        if self.hparams["classes"] != "12" or self.hparams["silence_clips"] == 0:
            return []
        d = self.folder / NOISE
        files = sorted(d.glob("*.wav")) if d.is_dir() else []
        if not files:
            raise DatasetError(
                f"classes=12 needs the silence class from {d}/*.wav, which is missing or empty. Unpack the full "
                f"archive, or pass --set dataset.silence_clips=0 to train without silence examples."
            )
        return files

    def _identity(self, clips, noise) -> str:
        root = self.folder
        h = hashlib.sha256()
        for rel, split in clips:
            st = (root / rel).stat()
            h.update(f"{rel} {st.st_size} {st.st_mtime_ns} {split}\n".encode())
        for p in noise:
            st = p.stat()
            h.update(f"{NOISE}/{p.name} {st.st_size} {st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    # ----------------------------------------------------------------------- load
    def label(self, word: str, words: list[str]) -> int:
        if self.hparams["classes"] == "12":
            return COMMANDS.index(word) + 2 if word in COMMANDS else 0
        return words.index(word)

    def load(self, split: str) -> ArrayData:
        if split not in self.splits:
            raise DatasetError(f"gsc has splits {self.splits}, not {split!r}")
        clips, noise = self.clips(), self.noise_files()
        params = {k: v for k, v in self.hparams.items() if k not in _NOT_IN_KEY}
        key = {**params, "files": self._identity(clips, noise),
               "features": [N_FFT, HOP, N_MELS, FMIN, FMAX, FRAMES, TOP_DB], "v": 1}
        if self.hparams["storage"] != "memory":
            rows = [rel for rel, s in clips if s == split]
            crops = len(noise) * self.hparams["silence_clips"] if split == "train" else 0
            if use_disk(self.hparams["storage"], len(rows) + crops, FRAMES, N_MELS):
                return self._disk(split, rows, noise if split == "train" else [], key)
        data = cached("gsc", key, lambda: self._compute(clips, noise))
        mask = data["split"] == SPLIT_CODE[split]
        return ArrayData(data["x"][mask], data["y"][mask])

    def _disk(self, split: str, rows: list[str], noise: list[Path], key: dict) -> ArrayData:
        """One split as float16 features memory-mapped from ``<cache>/gsc/<key>.float16.npy``, computed clip by clip
        into the file (never the whole split in memory); the same rows, in the same order, as the memory path."""
        root, words, k = self.folder, self.words(), self.hparams["silence_clips"]
        labels = [self.label(rel.split("/")[0], words) for rel in rows] + [1] * (len(noise) * k)
        shape = (len(labels), FRAMES, N_MELS)

        def fill(out):
            i = 0
            for rel in track(rows, len(rows), f"gsc: {split} clip features to disk"):
                wave, sr = read_audio(root / rel, SAMPLE_RATE)
                store_counts(out, i, gsc_features(wave, sr)[None])
                i += 1
            for p in noise:
                wave, sr = read_audio(p, SAMPLE_RATE)
                if wave.size < SAMPLE_RATE:
                    raise DatasetError(f"background noise file {p} is shorter than one second ({wave.size} samples)")
                for start in np.linspace(0, wave.size - SAMPLE_RATE, k).astype(int) if k > 1 else [0]:
                    store_counts(out, i, gsc_features(wave[start : start + SAMPLE_RATE], sr)[None])
                    i += 1

        x = cached_array("gsc", {**key, "split": split}, shape, fill, dtypes=(np.float16,))
        return ArrayData(x, torch.tensor(labels, dtype=torch.int64))

    def _compute(self, clips, noise) -> dict[str, torch.Tensor]:
        root, words = self.folder, self.words()
        feats, labels, splits = [], [], []
        for rel, split in track(clips, len(clips), "gsc: clip features"):
            wave, sr = read_audio(root / rel, SAMPLE_RATE)
            feats.append(gsc_features(wave, sr))
            labels.append(self.label(rel.split("/")[0], words))
            splits.append(SPLIT_CODE[split])
        k = self.hparams["silence_clips"]
        for p in track(noise, len(noise), "gsc: background noise"):
            wave, sr = read_audio(p, SAMPLE_RATE)
            if wave.size < SAMPLE_RATE:
                raise DatasetError(f"background noise file {p} is shorter than one second ({wave.size} samples)")
            for start in np.linspace(0, wave.size - SAMPLE_RATE, k).astype(int) if k > 1 else [0]:
                feats.append(gsc_features(wave[start : start + SAMPLE_RATE], sr))
                labels.append(1)
                splits.append(SPLIT_CODE["train"])
        return {"x": torch.from_numpy(np.stack(feats)), "y": torch.tensor(labels, dtype=torch.int64),
                "split": torch.tensor(splits)}

    def identity(self):
        clips, noise = self.clips(), self.noise_files()
        return {"name": self.name, "params": dict(self.hparams), "clips": len(clips), "noise_files": len(noise),
                "files_digest": self._identity(clips, noise), "class_names": self.class_names}


def register(register):
    register(GSC)
