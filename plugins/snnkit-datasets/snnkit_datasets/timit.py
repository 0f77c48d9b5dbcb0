"""``timit``: TIMIT (LDC93S1) frame-level phone classification, 39 MFCCs per frame, 39 folded phones.

Expected layout (the LDC distribution as it is; names matched case-insensitively, so ``train/dr1/...`` and
``.wav``/``.phn`` copies load too; ``timit/data/TRAIN/...`` is found as well, and ``SA1.WAV.wav`` RIFF
duplicates next to the originals are ignored)::

    <data root>/timit/                          (or --data-dir pointing at this folder)
        TRAIN/DR1/FCJF0/SI1027.WAV  SI1027.PHN  ...    TRAIN/DR<1-8>/<speaker>/<utterance>.{WAV,PHN}
        TEST/DR1/FAKS0/...

``.WAV`` files are NIST SPHERE, 16 kHz, 16-bit PCM (RIFF copies are read too); any other rate raises
:class:`DatasetError`. ``.PHN`` lines are ``<start sample> <end sample> <phone>`` with the 61 TIMIT phones.

Preprocessing (NRR-SNN: "39 MFCCs per frame, 39 phone classes"):

* the SA1/SA2 dialect sentences are dropped (``include_sa=false``), as is standard: 3,696 training
  utterances; ``test_set=core`` (default) is the 24-speaker core test set (192 utterances),
  ``test_set=full`` all 1,344 SI/SX test utterances;
* features: :func:`snnkit_datasets.mfcc.mfcc`, 25 ms Hamming windows every 10 ms, 13 cepstra + deltas +
  delta-deltas = 39, mean/variance normalised per utterance;
* each frame is labelled with the phone whose ``.PHN`` segment holds the frame's centre sample, folded from
  61 to 39 classes with the standard Lee & Hon (1989) table (:data:`FOLD`); Lee & Hon delete ``q`` (glottal
  stop), so its frames (about 1 % of all) are removed from the frame stream: they are neither targets nor
  context (this keeps ``x`` a zero-copy view, see below).

How examples are formed: snnkit's :class:`ArrayData` has one label per example, so each example is a window
of ``window`` consecutive frames (default 11: the target frame with 5 frames of context on each side) and
its label is the folded phone of the ``label_at`` frame (``centre`` by default; ``last`` gives a causal
setting where the network has seen the frame last). Targets are every ``stride``-th frame. The frames of
a split are concatenated in one stream, so a window at an utterance edge reaches into the neighbouring
utterance (its leading/trailing silence); every frame of every utterance is a target once (stride 1). ``x``
is a zero-copy strided view of the frame stream (a batch indexed out of it is a normal tensor). NRR-SNN
itself runs whole utterances and scores every time step ("batches cut to the longest valid length"), which
the single-label interface cannot express; ``label_at = last`` is the causal analogue (the target frame is
the last one the network sees), with the context limited to ``window`` frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.dataset import track
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import cached, corpus_dir

from .mfcc import mfcc
from .sphere import read_any
from .ti46 import files_identity, find_dir

SAMPLE_RATE = 16000
LAYOUT = "timit/{TRAIN,TEST}/DR<1-8>/<speaker>/<utterance>.{WAV,PHN}"

PHONES_61 = (
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# hh hv ih ix iy jh k "
    "kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z zh"
).split()
#: Lee & Hon (1989) folding of the 61 TIMIT phones to 39 classes; q maps to None (deleted)
FOLD: dict[str, str | None] = {p: p for p in PHONES_61}
FOLD.update({
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m", "en": "n",
    "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    "pcl": "sil", "tcl": "sil", "kcl": "sil", "bcl": "sil", "dcl": "sil", "gcl": "sil", "h#": "sil", "pau": "sil",
    "epi": "sil", "q": None,
})
PHONES_39 = sorted({v for v in FOLD.values() if v is not None})
assert len(PHONES_61) == 61 and len(PHONES_39) == 39

#: the 24 speakers of the core test set (3 per dialect region), Garofolo et al. 1993
CORE_TEST_SPEAKERS = frozenset(
    "mdab0 mwbt0 felc0 mtas1 mwew0 fpas0 mjmp0 mlnt0 fpkt0 mlll0 mtls0 fjlm0 mbpm0 mklt0 fnlp0 mcmj0 mjdh0 fmgd0 "
    "mgrt0 mnjm0 fdhc0 mjln0 mpam0 fmld0".split()
)


def read_phn(path: Path) -> list[tuple[int, int, str]]:
    segs = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or parts[2] not in FOLD:
            raise DatasetError(f"{path}:{n}: expected '<start> <end> <phone>' with a TIMIT phone, got {line!r}")
        segs.append((int(parts[0]), int(parts[1]), parts[2]))
    if not segs:
        raise DatasetError(f"{path} holds no phone segments")
    return segs


def frame_labels(segs: list[tuple[int, int, str]], n_frames: int, sr: int = SAMPLE_RATE,
                 win_ms: float = 25.0, hop_ms: float = 10.0) -> np.ndarray:
    """Folded 39-class label of each frame (by its centre sample); -1 for q frames (deleted by the loader)."""
    win = int(round(sr * win_ms / 1000))
    hop = int(round(sr * hop_ms / 1000))
    centres = np.arange(n_frames) * hop + win // 2
    starts = np.array([s for s, _, _ in segs])
    ids = np.array([-1 if FOLD[p] is None else PHONES_39.index(FOLD[p]) for _, _, p in segs])
    which = np.clip(np.searchsorted(starts, centres, side="right") - 1, 0, len(segs) - 1)
    return ids[which]


class TIMIT(Dataset):
    """TIMIT frame-level phone classification: windows of 39-d MFCC frames, 39 folded phone classes."""

    name = "timit"
    description = "TIMIT (LDC93S1) frame phone classification: 39 MFCC (13+d+dd), 39 folded phones, window of frames"
    source = "https://catalog.ldc.upenn.edu/LDC93S1"
    licence = "LDC User Agreement for Non-Members (not redistributable)"
    params = (
        Param("window", 11, "frames per example (the target frame plus context)", unit="frames"),
        Param("label_at", "centre", "which frame of the window gives the label", choices=("centre", "last")),
        Param("stride", 1, "use every stride-th frame as a target", unit="frames"),
        Param("test_set", "core", "core: 24-speaker core test set (192 utterances); full: all 1,344",
              choices=("core", "full")),
        Param("include_sa", False, "keep the SA1/SA2 dialect sentences"),
    )

    @property
    def num_classes(self):
        return 39

    @property
    def input_size(self):
        return 39

    @property
    def class_names(self):
        return list(PHONES_39)

    @property
    def folder(self) -> Path:
        p = corpus_dir(self.data_dir, "timit", "TRAIN")
        if self.data_dir and find_dir(Path(self.data_dir).expanduser(), "train") and not (p / "TRAIN").exists():
            return Path(self.data_dir).expanduser()  # lower-case copy given directly
        return p

    def utterances(self, split: str) -> list[tuple[Path, Path]]:
        if split not in self.splits:
            raise DatasetError(f"timit has splits {self.splits}, not {split!r}")
        d = find_dir(self.folder, split) or find_dir(find_dir(self.folder, "data") or self.folder / "data", split)
        if d is None:
            raise DatasetError(
                f"TIMIT not found: expected {self.folder}/{LAYOUT.split('/', 1)[1]}. Pass --data-dir ROOT (with "
                f"ROOT/timit) or the timit folder itself, or set SNNKIT_DATA. TIMIT is LDC93S1 (licensed)."
            )
        out = []
        for wav in sorted(d.rglob("*")):
            if wav.suffix.lower() != ".wav" or "." in wav.stem or not wav.parent.parent.name.lower().startswith("dr"):
                continue  # (SA1.WAV.wav: a RIFF copy next to the SPHERE original, as some redistributions have)
            if not wav.is_file():
                continue
            if not self.hparams["include_sa"] and wav.stem.lower().startswith("sa"):
                continue
            if (
                split == "test"
                and self.hparams["test_set"] == "core"
                and wav.parent.name.lower() not in CORE_TEST_SPEAKERS
            ):
                continue
            phn = next((wav.with_suffix(s) for s in (".PHN", ".phn") if wav.with_suffix(s).exists()), None)
            if phn is None:
                raise DatasetError(f"{wav} has no matching .PHN alignment file; expected {LAYOUT}")
            out.append((wav, phn))
        if not out:
            raise DatasetError(f"{d} holds no utterances for split {split!r}; expected {LAYOUT}")
        return out

    def _compute(self, utts) -> dict[str, torch.Tensor]:
        feats, labels, lengths = [], [], []
        for wav, phn in track(utts, len(utts), "timit: MFCC frames"):
            wave, sr = read_any(wav, SAMPLE_RATE)
            f = mfcc(wave, sr)
            f = (f - f.mean(axis=0)) / (f.std(axis=0) + 1e-8)
            feats.append(f.astype(np.float32))
            lab = frame_labels(read_phn(phn), f.shape[0], sr)
            keep = lab >= 0  # q frames are deleted
            feats[-1] = feats[-1][keep]
            labels.append(lab[keep])
            lengths.append(int(keep.sum()))
        return {"frames": torch.from_numpy(np.concatenate(feats)),
                "labels": torch.from_numpy(np.concatenate(labels).astype(np.int64)), "lengths": torch.tensor(lengths)}

    def load(self, split: str) -> ArrayData:
        utts = self.utterances(split)
        hp = self.hparams
        files = [p for pair in utts for p in pair]
        key = {"split": split, "files": files_identity(files, self.folder), "mfcc": "13+d+dd/25ms/10ms/cmvn-utt",
               "q": "deleted", "v": 1}
        data = cached("timit", key, lambda: self._compute(utts))
        return windows(data["frames"], data["labels"], hp["window"], hp["label_at"], hp["stride"])

    def identity(self):
        out = {"name": self.name, "params": dict(self.hparams)}
        for split in self.splits:
            utts = self.utterances(split)
            out[f"{split}_utterances"] = len(utts)
            out[f"{split}_digest"] = files_identity([p for pair in utts for p in pair], self.folder)
        return out


def windows(
    frames: torch.Tensor, labels: torch.Tensor, window: int, label_at: str = "centre", stride: int = 1
) -> ArrayData:
    """Examples (N, window, C) as a strided view of the frame stream (F, C), labelled at the centre/last frame.

    The stream is edge-padded (first/last frame repeated) by the context so that every frame is a target.
    """
    if window < 1 or stride < 1:
        raise DatasetError(f"timit window and stride must be >= 1 (got {window}, {stride})")
    before = window // 2 if label_at == "centre" else window - 1
    after = window - 1 - before
    padded = torch.cat([frames[:1].expand(before, -1), frames, frames[-1:].expand(after, -1)])
    x = padded.unfold(0, window, stride).transpose(1, 2)  # (N, window, C), a view
    return ArrayData(x, labels[::stride])


def register(register):
    register(TIMIT)
