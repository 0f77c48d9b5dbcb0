"""The presets that ship inside snnkit: one TOML file per paper recipe, found with importlib.resources.

Each file is a ``--config`` file (a ``[train]`` table, with prose comments) followed by a ``[preset]`` table that
says what it reproduces: ``reproduces`` (paper, table or figure), ``paper`` (the paper's number), ``ours`` (our
number with the same recipe, or "not run"), ``data`` (how to get the dataset), ``ships`` (whether the dataset
ships inside snnkit) and ``see`` (the documentation page with the details). ``[preset]`` comes last so that
:meth:`Preset.config_text` (the file as ``snnkit presets NAME`` prints it) is a ``--config`` file as it stands.
"""

from __future__ import annotations

import difflib
import tomllib
from importlib.resources import files

from attrs import frozen

from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.config import DEFAULT_DATASET, TrainConfig

#: the keys of every ``[preset]`` table, in the order they are shown
FIELDS = ("reproduces", "paper", "ours", "data", "ships", "see")
SECTION = "[preset]"
#: what a preset's ``data`` says about getting its dataset (when it does not ship with snnkit)
DATA = {"download": "free; fetched into the data root with --set dataset.download=true",
        "LDC": "a licensed LDC corpus you provide (--data-dir ROOT)",
        "yours": "not redistributed; you provide it (--data-dir ROOT)"}


@frozen
class Preset:
    name: str
    text: str  # the shipped file
    meta: dict  # its [preset] table
    train: dict  # its [train] table

    @property
    def dataset(self) -> str:
        return str(self.train.get("dataset", DEFAULT_DATASET))

    def config(self) -> TrainConfig:
        """The preset as a run config (what ``snnkit train --preset NAME`` starts from)."""
        return TrainConfig.from_dict(self.train, source=f"preset {self.name}")

    def config_text(self) -> str:
        """The file with its ``[preset]`` table turned into comments at the top: a ``--config`` file as it stands."""
        body = self.text.split(f"\n{SECTION}", 1)[0].rstrip("\n")
        shipped = "ships with snnkit" if self.meta["ships"] else f"not shipped: {DATA[self.meta['data']]}"
        head = [f"# preset {self.name}: snnkit train --preset {self.name} (this text is also a --config file)",
                *(f"# {key}: {self.meta[key]}" for key in ("reproduces", "paper", "ours")),
                f"# data: {self.dataset}, {shipped}", f"# see: {self.meta['see']}"]
        return "\n".join(head) + "\n#\n" + body + "\n"

    def to_json(self) -> dict:
        return {"name": self.name, "dataset": self.dataset, **{k: self.meta[k] for k in FIELDS}}


def _folder():
    return files(__name__)


def names() -> list[str]:
    """Every shipped preset's name, sorted."""
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".toml"))


def get(name: str) -> Preset:
    """The shipped preset ``name``; an unknown name fails with close matches and the list."""
    known = names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint}. The presets are: {', '.join(known)} (snnkit presets "
                          "lists them; for a file of your own use --config FILE)")
    text = (_folder() / f"{name}.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    meta, train = data.get("preset"), data.get("train")
    missing = [k for k in FIELDS if not isinstance(meta, dict) or k not in meta]
    if not missing and meta["data"] not in DATA:
        missing = [f"data as one of {', '.join(DATA)}"]
    if not isinstance(train, dict) or missing or set(data) != {"train", "preset"}:
        raise ConfigError(f"preset {name} is damaged (it needs a [train] table and a [preset] table with "
                          f"{', '.join(FIELDS)}; missing: {', '.join(missing) or 'none'}); reinstall snnkit")
    return Preset(name, text, meta, train)


def all_presets() -> list[Preset]:
    return [get(n) for n in names()]
