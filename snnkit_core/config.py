"""Run configuration: one frozen record that says everything needed to rerun a training run."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs
from attrs import field, frozen

from .errors import ConfigError

#: the dataset that ships inside snnkit-datasets, so `snnkit train` works offline
DEFAULT_DATASET = "espeak-digits"


def _tuple_int(v) -> tuple[int, ...]:
    if isinstance(v, str):
        try:
            return tuple(int(p) for p in v.replace(" ", "").split(",") if p)
        except ValueError:
            raise ConfigError(f"hidden sizes must be integers separated by commas, like 400,400,400; got {v!r}") from None
    return tuple(int(p) for p in v)


def _tuple_str(v) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v)


@frozen(kw_only=True)
class TrainConfig:
    neuron: str = "lif"
    conn: str = "srsc"
    rules: tuple[str, ...] = field(default=("bptt",), converter=_tuple_str)
    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    hidden: tuple[int, ...] = field(default=(128, 128, 128), converter=_tuple_int)
    epochs: int = 10
    batch_size: int = 32
    lr: float | None = None  # None: the gradient rule's default
    weight_decay: float | None = None  # None: the gradient rule's default
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"  # auto | triton | torch | reference (see Network.backend)
    limit: int | None = None  # at most this many training (and test) examples
    readout: str | None = None  # None: the gradient rule's default
    bias: bool = False
    init: str = "kaiming"
    weight_scale: float = 1.0
    dropout: float = 0.0  # after each hidden layer's feedforward product; one mask per sample for all steps
    #: per-component parameter overrides: {"neuron": {...}, "conn": {...}, "dataset": {...}, "rule.NAME": {...}}
    params: dict[str, dict[str, Any]] = field(factory=dict)

    @classmethod
    def from_toml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data.get("train", data), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        names = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            import difflib

            hints = [f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, names, 1)) else "") for k in unknown]
            raise ConfigError(f"{source}: unknown keys {', '.join(hints)}. Known keys: {', '.join(sorted(names))}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def evolve(self, **changes) -> "TrainConfig":
        return attrs.evolve(self, **{k: v for k, v in changes.items()})


def dump_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for run configs: scalars, lists of scalars and nested tables; None is left out."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []

    def scalar(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def emit(prefix: str, d: dict) -> None:
        for k, v in d.items():
            if v is None:
                continue
            if isinstance(v, dict):
                tables.append((f"{prefix}.{_key(k)}" if prefix else _key(k), v))
            else:
                lines.append(f"{_key(k)} = {scalar(v)}")

    emit("", data)
    while tables:
        name, d = tables.pop(0)
        lines.append(f"\n[{name}]")
        emit(name, d)
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else '"' + k + '"'
