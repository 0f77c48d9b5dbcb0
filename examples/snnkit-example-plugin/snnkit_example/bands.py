"""``poisson-bands``: a synthetic spike dataset generated in memory (nothing to download).

``channels`` input channels are split into ``classes`` equal bands. An example of class k is a 0/1 spike
train of ``steps`` steps in which every channel fires independently with probability ``p_low`` per step,
except the channels of band k, which fire with ``p_high``. Splits are drawn from fixed seeds, so they are
identical on every machine.
"""

from __future__ import annotations

import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.errors import DatasetError


class PoissonBands(Dataset):
    """Poisson spike trains; the class is the band of channels that fires faster (example plugin)."""

    name = "poisson-bands"
    description = "synthetic 0/1 spike trains: class k = channel band k fires faster (example plugin, no download)"
    source = "generated in memory"
    licence = "CC0 1.0"
    splits = ("train", "test")
    params = (
        Param("classes", 4, "number of classes (= channel bands)"),
        Param("channels", 16, "input channels; a multiple of classes", unit="channels"),
        Param("steps", 50, "time steps per example", unit="steps"),
        Param("examples", 512, "examples per split"),
        Param("p_low", 0.05, "background spike probability per step", unit="1/step"),
        Param("p_high", 0.3, "spike probability per step in the class's band", unit="1/step"),
    )

    def __init__(self, data_dir=None, **params):
        super().__init__(data_dir, **params)
        hp = self.hparams
        if hp["classes"] < 2 or hp["channels"] % hp["classes"]:
            raise DatasetError(
                f"poisson-bands needs classes >= 2 and channels a multiple of classes; "
                f"got classes={hp['classes']}, channels={hp['channels']}"
            )

    @property
    def num_classes(self) -> int:
        return self.hparams["classes"]

    @property
    def input_size(self) -> int:
        return self.hparams["channels"]

    def load(self, split: str) -> ArrayData:
        if split not in self.splits:
            raise DatasetError(f"poisson-bands has splits {self.splits}, not {split!r}")
        hp = self.hparams
        g = torch.Generator().manual_seed({"train": 0, "test": 1}[split])
        n, k, c, t = hp["examples"], hp["classes"], hp["channels"], hp["steps"]
        y = torch.randint(0, k, (n,), generator=g)
        band = torch.arange(c) // (c // k)  # (C,) band of each channel
        p = torch.where(band[None, :] == y[:, None], hp["p_high"], hp["p_low"])  # (N, C)
        x = (torch.rand(n, t, c, generator=g) < p[:, None, :]).float()  # (N, T, C)
        return ArrayData(x, y)
